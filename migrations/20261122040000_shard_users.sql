-- Members on shards (DESIGN.md §2): every member of a tenant is a Headscale user
-- `<tenant code>.<handle>` on the tenant's shard (`t7k2.alice`).
--
-- The handle is the member's name inside the tenant: derived once from the email's
-- local part (lower-case; anything but a-z, 0-9 becomes `-`), made unique within the
-- tenant with a number (`alice`, `alice-2`), and never changed afterwards, because the
-- shard user and the tenant's policy are named after it.

alter table membership add column handle text;

-- `security definer`: the trigger must see the tenant's other memberships to pick a
-- free handle, also when the inserting transaction's row-level scope is one person.
create function membership_assign_handle() returns trigger
  language plpgsql
  security definer
  set search_path = public
  as $$
declare
  base      text;
  candidate text;
  n         integer := 1;
begin
  if tg_op = 'UPDATE' then
    if new.handle is distinct from old.handle and old.handle is not null then
      raise exception 'a member''s handle is immutable' using errcode = 'check_violation';
    end if;
    if new.handle is not null then
      return new;
    end if;
  elsif new.handle is not null then
    return new;
  end if;

  select trim(both '-' from regexp_replace(
           lower(coalesce(nullif(split_part(p.email, '@', 1), ''), p.display_name, '')),
           '[^a-z0-9]+', '-', 'g'))
    into base
    from person p where p.id = new.person_id;
  base := left(coalesce(nullif(base, ''), 'member'), 32);
  base := trim(both '-' from base);
  if base = '' then
    base := 'member';
  end if;

  candidate := base;
  while exists (select 1 from membership m
                 where m.tenant_id = new.tenant_id and m.handle = candidate
                   and m.person_id <> new.person_id) loop
    n := n + 1;
    candidate := base || '-' || n;
  end loop;
  new.handle := candidate;
  return new;
end
$$;

create trigger membership_assign_handle before insert or update on membership
  for each row execute function membership_assign_handle();

-- Existing memberships, oldest first, so the earliest member keeps the plain name.
do $$
declare r record;
begin
  for r in select tenant_id, person_id from membership order by created_at, person_id loop
    update membership set handle = null where tenant_id = r.tenant_id and person_id = r.person_id;
  end loop;
end
$$;

alter table membership
  alter column handle set not null,
  add constraint membership_handle_check check (handle ~ '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?(-[0-9]+)?$'),
  add constraint membership_tenant_handle_key unique (tenant_id, handle);

-- The Headscale user of a member on a shard, as the sync created or found it. A row
-- outlives the membership (the user may still own devices); whether its member is still
-- a member is a join away.
create table shard_user (
  shard_id            uuid not null,
  tenant_id           uuid not null,
  person_id           uuid not null,
  -- `<code>.<handle>`, the user's name on the shard.
  user_name           text not null,
  headscale_user_id   bigint not null,
  -- Whether the portal created the user or found it already there (a retry after a
  -- create whose answer was lost, or a user made by hand).
  created_by_portal   boolean not null,
  created_at          timestamptz not null default now(),
  constraint shard_user_pkey primary key (shard_id, tenant_id, person_id),
  constraint shard_user_name_key unique (shard_id, user_name),
  constraint shard_user_shard_fkey foreign key (shard_id) references shard (id),
  constraint shard_user_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint shard_user_person_fkey foreign key (person_id) references person (id),
  constraint shard_user_headscale_user_id_check check (headscale_user_id > 0)
);
create index shard_user_tenant_idx on shard_user (tenant_id);

alter table shard_user enable row level security;
create policy shard_user_scope on shard_user
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (app_is_operator());

grant select, insert, update on shard_user to portal_app;
