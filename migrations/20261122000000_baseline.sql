-- Baseline: people, tenants, memberships, shards, web sessions, login attempts.
--
-- Roles (DESIGN.md §6): migrations run as the owner role (it owns every table); the
-- portal runs as `portal_app`, which owns nothing and cannot bypass row-level security.
-- Production creates `portal_app` as a LOGIN role beforehand; the guard below only
-- makes fresh test databases self-sufficient.
do $$
begin
  if not exists (select from pg_roles where rolname = 'portal_app') then
    create role portal_app nologin nobypassrls;
  end if;
end
$$;

grant usage on schema public to portal_app;

-- Per-transaction scope settings. The portal sets them with
-- `set_config(name, value, true)` inside each transaction; outside one they are empty.
create function app_tenant_id() returns uuid
  language sql stable
  as $$ select nullif(current_setting('app.tenant_id', true), '')::uuid $$;

create function app_person_id() returns uuid
  language sql stable
  as $$ select nullif(current_setting('app.person_id', true), '')::uuid $$;

create function app_is_operator() returns boolean
  language sql stable
  as $$ select coalesce(current_setting('app.operator', true), '') = 'on' $$;

-- A person is who the identity provider says: (issuer, subject), never email alone.
create table person (
  id             uuid not null default gen_random_uuid(),
  issuer         text not null,
  subject        text not null,
  email          text,
  display_name   text not null default '',
  is_operator    boolean not null default false,
  created_at     timestamptz not null default now(),
  last_login_at  timestamptz,
  constraint person_pkey primary key (id),
  constraint person_issuer_subject_key unique (issuer, subject)
);

create table shard (
  id                  uuid not null default gen_random_uuid(),
  cluster_id          text not null,
  name                text not null,
  region              text not null,
  -- What clients pass as `tailscale up --login-server=…`.
  login_server_url    text not null,
  -- Where the portal reaches Headscale's REST API (often the same host).
  api_url             text not null,
  -- AES-256-GCM sealed API key: version byte, 12-byte nonce, ciphertext+tag.
  api_key_sealed      bytea not null,
  node_capacity       integer not null,
  status              text not null default 'active',
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  constraint shard_pkey primary key (id),
  constraint shard_cluster_id_key unique (cluster_id),
  constraint shard_cluster_id_check check (cluster_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  constraint shard_node_capacity_check check (node_capacity >= 0),
  constraint shard_status_check check (status in ('active', 'draining', 'disabled'))
);

create table tenant (
  id              uuid not null default gen_random_uuid(),
  -- Immutable: it namespaces the tenant's names on shared shards (DESIGN.md §2).
  code            text not null,
  slug            text not null,
  display_name    text not null,
  plan            text not null default 'starter',
  region          text not null default 'local',
  status          text not null default 'active',
  shard_id        uuid,
  created_at      timestamptz not null default now(),
  constraint tenant_pkey primary key (id),
  constraint tenant_code_key unique (code),
  constraint tenant_slug_key unique (slug),
  constraint tenant_code_check check (code ~ '^[a-z][a-z0-9]{3,7}$'),
  constraint tenant_slug_check check (slug ~ '^[a-z0-9]([a-z0-9]|-(?!-)){0,38}[a-z0-9]$'),
  constraint tenant_status_check check (status in ('active', 'suspended')),
  constraint tenant_shard_fkey foreign key (shard_id) references shard (id)
);

create function tenant_code_immutable() returns trigger
  language plpgsql
  as $$
begin
  if new.code <> old.code then
    raise exception 'tenant code is immutable' using errcode = 'check_violation';
  end if;
  return new;
end
$$;

create trigger tenant_code_immutable before update on tenant
  for each row execute function tenant_code_immutable();

create table membership (
  tenant_id   uuid not null,
  person_id   uuid not null,
  role        text not null,
  -- 'idp': from the groups claim, refreshed at every login, not editable in the portal.
  -- 'portal': granted in the portal (invitations).
  source      text not null,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  constraint membership_pkey primary key (tenant_id, person_id),
  constraint membership_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
  constraint membership_person_fkey foreign key (person_id) references person (id) on delete cascade,
  constraint membership_role_check check (role in
    ('owner', 'admin', 'network_admin', 'it_admin', 'billing_admin', 'auditor', 'member')),
  constraint membership_source_check check (source in ('idp', 'portal'))
);
create index membership_person_idx on membership (person_id);

-- Row-level security on tenant tables. `portal_app` is not the owner, so these apply
-- to it always; a query that forgot its tenant filter still sees only its tenant.
alter table tenant enable row level security;
create policy tenant_scope on tenant
  using (
    id = app_tenant_id()
    or app_is_operator()
    or exists (select 1 from membership m where m.tenant_id = tenant.id and m.person_id = app_person_id())
  )
  with check (id = app_tenant_id() or app_is_operator());

alter table membership enable row level security;
create policy membership_scope on membership
  using (tenant_id = app_tenant_id() or person_id = app_person_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or person_id = app_person_id() or app_is_operator());

-- Web sessions, in the shape tower-sessions' Postgres store expects.
create table web_session (
  id           text not null,
  data         bytea not null,
  expiry_date  timestamptz not null,
  constraint web_session_pkey primary key (id)
);
create index web_session_expiry_idx on web_session (expiry_date);

-- One row per started sign-in; consumed (deleted) by the callback, so a state value
-- works once. The browser holds only the random id in a short-lived cookie.
create table oidc_login (
  id             uuid not null,
  state          text not null,
  nonce          text not null,
  pkce_verifier  text not null,
  return_to      text not null,
  created_at     timestamptz not null default now(),
  constraint oidc_login_pkey primary key (id)
);
create index oidc_login_created_idx on oidc_login (created_at);

grant select, insert, update on person to portal_app;
grant select, insert, update, delete on tenant, membership, shard to portal_app;
grant select, insert, update, delete on web_session, oidc_login to portal_app;
grant execute on function app_tenant_id(), app_person_id(), app_is_operator() to portal_app;
