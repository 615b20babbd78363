-- The background sync (DESIGN.md §1, §7, §9): each shard's sync state, and a mirror of
-- every shard's nodes and pre-auth keys, with each node's online intervals for billing.
--
-- Rules the sync follows (app/src/data/sync.rs, server/src/jobs/sync.rs):
-- - Claiming: a worker takes a due shard by setting `sync_lease_owner`/`sync_lease_until`
--   in one `update … from (select … for update skip locked)`; a lease that ran out (the
--   worker crashed) makes the shard claimable again. Applying a snapshot locks the shard
--   row and checks the lease is still the worker's, so two workers never write one
--   shard's mirror at once, even after a lease ran out under a slow worker.
-- - Only changed rows are written (`on conflict … do update … where … is distinct from`).
-- - Online intervals open and close at sync times (the database clock). When a shard
--   cannot be read, or was last read too long ago, open intervals end at the last
--   successful sync: usage is never invented for time nobody observed.

-- Sync state of a shard. `shard` is operator data (no row-level security).
alter table shard
  add column health                text not null default 'unknown',
  -- What `/version` reported at the last successful sync (`0.29.2`).
  add column headscale_version     text,
  -- The last successful sync (the mirror is as of this time).
  add column last_sync_at          timestamptz,
  add column last_sync_attempt_at  timestamptz,
  -- Why the last sync failed, as a sentence naming the shard (never a secret); null
  -- after a success.
  add column last_sync_error       text,
  -- Time to fetch the last snapshot (version, nodes and keys).
  add column last_sync_latency_ms  integer,
  add column consecutive_failures  integer not null default 0,
  add column next_sync_at          timestamptz not null default now(),
  add column sync_lease_owner      uuid,
  add column sync_lease_until      timestamptz,
  add constraint shard_health_check check (health in ('unknown', 'healthy', 'unhealthy')),
  add constraint shard_consecutive_failures_check check (consecutive_failures >= 0),
  add constraint shard_last_sync_error_check check (char_length(last_sync_error) <= 1000),
  add constraint shard_last_sync_latency_ms_check check (last_sync_latency_ms >= 0),
  add constraint shard_sync_lease_check
    check ((sync_lease_owner is null) = (sync_lease_until is null));
create index shard_next_sync_idx on shard (next_sync_at) where status <> 'disabled';

-- A node (device) as the shard last showed it. The key is the shard's own node id.
-- `tenant_id` is null for an orphan, a node the sync could not attribute to a tenant
-- placed on this shard; `orphan_reason` says why, for the operator.
create table node (
  shard_id            uuid not null,
  node_id             bigint not null,
  tenant_id           uuid,
  orphan_reason       text,
  given_name          text not null,
  name                text not null,
  -- The owning Headscale user (`t7k2.alice`); null for a tagged node (0.28+: tags XOR user).
  user_id             bigint,
  user_name           text,
  ip_addresses        inet[] not null default '{}',
  tags                text[] not null default '{}',
  online              boolean not null,
  last_seen           timestamptz,
  -- When the node key expires; null: never.
  expiry              timestamptz,
  approved_routes     text[] not null default '{}',
  available_routes    text[] not null default '{}',
  subnet_routes       text[] not null default '{}',
  register_method     text not null,
  -- The Headscale id of the pre-auth key the node registered with.
  pre_auth_key_id     bigint,
  shard_created_at    timestamptz,
  -- The first sync that saw the node, the last sync that changed its row, and the sync
  -- that found it gone from the shard. A present node was last seen at its shard's
  -- `last_sync_at` (not stored per row, so an unchanged node costs no write).
  first_synced_at     timestamptz not null default now(),
  changed_at          timestamptz not null default now(),
  removed_at          timestamptz,
  constraint node_pkey primary key (shard_id, node_id),
  constraint node_shard_fkey foreign key (shard_id) references shard (id),
  constraint node_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint node_node_id_check check (node_id > 0),
  constraint node_orphan_check check ((tenant_id is null) = (orphan_reason is not null)),
  constraint node_orphan_reason_check check (orphan_reason in
    ('no_owner', 'unknown_user', 'unknown_tag', 'mixed_tenants', 'tenant_not_on_shard')),
  constraint node_register_method_check check (register_method in
    ('auth_key', 'cli', 'oidc', 'unspecified'))
);
create index node_tenant_idx on node (tenant_id, shard_id) where removed_at is null;
create index node_orphan_idx on node (shard_id) where tenant_id is null and removed_at is null;

-- A pre-auth key as the shard lists it. Only the 12-character prefix that identifies a
-- key is kept, never the key: the check below refuses anything longer.
create table pre_auth_key (
  shard_id            uuid not null,
  key_id              bigint not null,
  tenant_id           uuid,
  orphan_reason       text,
  -- Null for a key made before Headscale 0.28, which has no prefix.
  key_prefix          text,
  user_id             bigint,
  user_name           text,
  reusable            boolean not null,
  ephemeral           boolean not null,
  used                boolean not null,
  expiration          timestamptz,
  acl_tags            text[] not null default '{}',
  shard_created_at    timestamptz,
  first_synced_at     timestamptz not null default now(),
  changed_at          timestamptz not null default now(),
  removed_at          timestamptz,
  constraint pre_auth_key_pkey primary key (shard_id, key_id),
  constraint pre_auth_key_shard_fkey foreign key (shard_id) references shard (id),
  constraint pre_auth_key_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint pre_auth_key_key_id_check check (key_id > 0),
  constraint pre_auth_key_key_prefix_check check (key_prefix ~ '^[A-Za-z0-9_-]{12}$'),
  constraint pre_auth_key_orphan_check check ((tenant_id is null) = (orphan_reason is not null)),
  constraint pre_auth_key_orphan_reason_check check (orphan_reason in
    ('no_owner', 'unknown_user', 'unknown_tag', 'mixed_tenants', 'tenant_not_on_shard'))
);
create index pre_auth_key_tenant_idx on pre_auth_key (tenant_id, shard_id) where removed_at is null;

-- When a node was online, as observed by the sync, for billing (DESIGN.md §7).
-- `tenant_id` is the node's tenant while the interval was open (an interval closes when
-- the node changes tenant); null for an orphan's time, which only operators see.
create table node_online_interval (
  id          bigint generated always as identity,
  tenant_id   uuid,
  shard_id    uuid not null,
  node_id     bigint not null,
  started_at  timestamptz not null,
  -- Null while the node is online. An open interval is known to last until its
  -- shard's `last_sync_at`; count it up to then, not up to now.
  ended_at    timestamptz,
  constraint node_online_interval_pkey primary key (id),
  constraint node_online_interval_node_fkey foreign key (shard_id, node_id)
    references node (shard_id, node_id),
  constraint node_online_interval_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint node_online_interval_order_check check (ended_at >= started_at)
);
-- At most one open interval per node.
create unique index node_online_interval_open_key on node_online_interval (shard_id, node_id)
  where ended_at is null;
create index node_online_interval_tenant_idx on node_online_interval (tenant_id, started_at);

-- Row-level security as on the baseline's tenant tables: a tenant sees its own rows,
-- operators (and the trusted sync, through the operator setting) see all. Orphans have
-- no tenant, so only operators see them.
alter table node enable row level security;
create policy node_scope on node
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());

alter table pre_auth_key enable row level security;
create policy pre_auth_key_scope on pre_auth_key
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());

alter table node_online_interval enable row level security;
create policy node_online_interval_scope on node_online_interval
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());

-- The mirror is never deleted from by the portal (a node gone from its shard is marked
-- `removed_at`), and usage is append-and-close only; no foreign key cascades, so a shard
-- or tenant with history cannot be deleted by accident.
grant select, insert, update on node, pre_auth_key, node_online_interval to portal_app;
