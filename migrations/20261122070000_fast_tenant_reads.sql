-- Faster tenant reads (docs/benchmarks.md, "Devices page" and "Fleet sync").
--
-- 1. Row-level security policies with their settings read once per statement.
--    `app_tenant_id()` parses a setting into a uuid; called bare in a policy it runs for
--    every row, wrapped in `(select …)` it is an initplan computed once. The functions
--    are stable, so the meaning is unchanged: same rows visible, same rows writable.
alter policy tenant_scope on tenant
  using (
    id = (select app_tenant_id())
    or (select app_is_operator())
    or exists (select 1 from membership m
                where m.tenant_id = tenant.id and m.person_id = (select app_person_id()))
  )
  with check (id = (select app_tenant_id()) or (select app_is_operator()));

alter policy membership_scope on membership
  using (tenant_id = (select app_tenant_id()) or person_id = (select app_person_id())
         or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or person_id = (select app_person_id())
              or (select app_is_operator()));

alter policy node_scope on node
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or (select app_is_operator()));

alter policy pre_auth_key_scope on pre_auth_key
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or (select app_is_operator()));

alter policy node_online_interval_scope on node_online_interval
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or (select app_is_operator()));

alter policy shard_user_scope on shard_user
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check ((select app_is_operator()));

alter policy pre_auth_key_meta_scope on pre_auth_key_meta
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or (select app_is_operator()));

alter policy audit_event_scope on audit_event
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or (select app_is_operator()));

-- 2. What the devices page's search matches, kept with the row: the device's names, its
--    addresses, its owner's Headscale user and its tags in the tenant's own names
--    (`tag:t7k2--web` reads `tag:web`), lower-cased. One `like` on it replaces seven
--    `ilike`s per row. (The owner's display name and email live in `person` and are
--    matched once per query, not per row.) Declared immutable so a generated column may
--    use it: its result depends only on its arguments (an inet's text form does not
--    depend on any setting).
create function node_search_text(given_name text, name text, ips inet[], user_name text,
                                 tags text[]) returns text
  language sql immutable parallel safe
  as $$
    select lower(concat_ws(' ', given_name, name,
                           (select string_agg(host(i), ' ') from unnest(ips) as i),
                           user_name,
                           (select string_agg(regexp_replace(t, '^tag:[a-z0-9]+--', 'tag:'), ' ')
                              from unnest(tags) as t)))
  $$;

alter table node add column search_text text not null
  generated always as (node_search_text(given_name, name, ip_addresses, user_name, tags))
  stored;

-- 3. The sync reads a shard's tenants by shard.
create index tenant_shard_idx on tenant (shard_id) where shard_id is not null;
