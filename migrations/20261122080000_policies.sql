-- Tenant ACL policies (DESIGN.md §2, docs/policies.md): revisions in the tenant's own
-- names, the subnets a tenant declares as its own, and per shard what is live there.

-- Raw addresses in a tenant's policy must lie inside these (never in the tailnet
-- ranges); two tenants on one shard may not overlap (checked when saving).
alter table tenant add column subnets cidr[] not null default '{}';

-- Every saved revision of a tenant's policy, as written (comments and all). Only
-- revisions that passed the checks and the tenant's tests are saved; a revision the
-- shard refused at push time is marked `rejected` and is skipped from then on, so the
-- shard policy is always built from each tenant's last good revision. Append-only for
-- the application role, apart from marking a rejection.
create table policy_revision (
  tenant_id        uuid not null,
  revision         integer not null,
  body             text not null,
  comment          text not null default '',
  author_id        uuid,
  -- As shown in the history; kept as it was at the time.
  author_name      text not null,
  created_at       timestamptz not null default now(),
  -- A revert: which revision's text this one restores.
  restores         integer,
  -- Set when a shard refused this revision (Headscale's reason, in its words).
  rejected_at      timestamptz,
  rejected_reason  text,
  constraint policy_revision_pkey primary key (tenant_id, revision),
  constraint policy_revision_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint policy_revision_author_fkey foreign key (author_id) references person (id),
  constraint policy_revision_revision_check check (revision > 0),
  constraint policy_revision_body_check check (length(body) <= 262144)
);

alter table policy_revision enable row level security;
create policy policy_revision_scope on policy_revision
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check (tenant_id = (select app_tenant_id()) or (select app_is_operator()));
grant select, insert on policy_revision to portal_app;
grant update (rejected_at, rejected_reason) on policy_revision to portal_app;

-- The push state of a shard's policy. `policy_dirty_since`: something the shard policy
-- is built from changed (a revision, a membership, a tenant's subnets or placement) and
-- the shard waits for a push; a push clears it only if nothing changed meanwhile.
alter table shard
  add column policy_dirty_since     timestamptz,
  -- Counts changes; a push clears the mark only if no change came after its claim
  -- (a change during a push keeps the shard marked).
  add column policy_change_seq      bigint not null default 0,
  add column policy_lease_owner     uuid,
  add column policy_lease_until     timestamptz,
  add column policy_pushed_at       timestamptz,
  add column policy_push_failures   integer not null default 0,
  add column policy_push_error      text,
  add column policy_push_attempt_at timestamptz,
  -- sha256 of the policy text live on the shard (hex).
  add column policy_hash            text;

-- Every shard gets its first policy from the portal: until then a shard without a
-- policy lets every node reach every other, across tenants. New shards too.
update shard set policy_dirty_since = now();
alter table shard alter column policy_dirty_since set default now();

create index shard_policy_dirty_idx on shard (policy_dirty_since)
  where policy_dirty_since is not null;

-- Which revision of each tenant is live on each shard (null: the default policy).
create table shard_policy_live (
  shard_id    uuid not null,
  tenant_id   uuid not null,
  revision    integer,
  live_since  timestamptz not null default now(),
  constraint shard_policy_live_pkey primary key (shard_id, tenant_id),
  constraint shard_policy_live_shard_fkey foreign key (shard_id) references shard (id),
  constraint shard_policy_live_tenant_fkey foreign key (tenant_id) references tenant (id)
);
alter table shard_policy_live enable row level security;
create policy shard_policy_live_scope on shard_policy_live
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check ((select app_is_operator()));
grant select, insert, update, delete on shard_policy_live to portal_app;

-- Marks a shard for a policy push. `security definer`: a tenant's transaction changes
-- what its shard's policy is built from, but may not otherwise write shards.
create function shard_policy_changed(p_shard uuid) returns void
  language sql
  security definer
  set search_path = public
  as $$
    update shard set policy_dirty_since = coalesce(policy_dirty_since, now()),
                     policy_change_seq = policy_change_seq + 1
     where id = p_shard and status <> 'disabled';
  $$;
revoke execute on function shard_policy_changed(uuid) from public;

create function tenant_policy_inputs_changed() returns trigger
  language plpgsql
  security definer
  set search_path = public
  as $$
declare
  t_new uuid;
  t_old uuid;
begin
  if tg_table_name = 'tenant' then
    if tg_op = 'UPDATE' and new.shard_id is not distinct from old.shard_id
       and new.subnets = old.subnets and new.status = old.status then
      return new;
    end if;
    perform shard_policy_changed(new.shard_id);
    if tg_op = 'UPDATE' and old.shard_id is distinct from new.shard_id then
      perform shard_policy_changed(old.shard_id);
    end if;
    return new;
  end if;
  -- membership or policy_revision: the tenant's shard.
  if tg_op in ('INSERT', 'UPDATE') then
    t_new := new.tenant_id;
  end if;
  if tg_op in ('UPDATE', 'DELETE') then
    t_old := old.tenant_id;
  end if;
  perform shard_policy_changed(t.shard_id)
     from tenant t where t.id in (t_new, t_old) and t.shard_id is not null;
  return null;
end
$$;

create trigger tenant_policy_inputs after insert or update on tenant
  for each row execute function tenant_policy_inputs_changed();
create trigger membership_policy_inputs after insert or delete on membership
  for each row execute function tenant_policy_inputs_changed();
create trigger policy_revision_policy_inputs after insert or update of rejected_at on policy_revision
  for each row execute function tenant_policy_inputs_changed();

-- A member's email is how the tenant's policy names them.
create function person_email_changed() returns trigger
  language plpgsql
  security definer
  set search_path = public
  as $$
begin
  perform shard_policy_changed(t.shard_id)
     from membership m join tenant t on t.id = m.tenant_id
    where m.person_id = new.id and t.shard_id is not null;
  return null;
end
$$;

create trigger person_policy_inputs after update of email on person
  for each row when (new.email is distinct from old.email)
  execute function person_email_changed();
