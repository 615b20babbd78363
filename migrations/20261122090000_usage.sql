-- Usage rollups and closed billing months (DESIGN.md §7, docs/billing-export.md).
--
-- The rollup job (`server::jobs::usage`) turns `node_online_interval` into daily rows.
-- A day of a shard is recomputed on every pass until it is *final* (nothing observed
-- later can change it, see `data::usage`); final rows are never written again. A month
-- is *closed* once every shard's days of it are final: its summary is then frozen in
-- `usage_month`, names included, so a closed month exports byte for byte the same.

-- Days of the shard before this one are final (null: none yet).
alter table shard add column usage_final_before date;
-- The last rollup pass of the shard (for the job's schedule and the operator pages).
alter table shard add column usage_rolled_at timestamptz;

-- One device's online time on one UTC day, as billed. `tenant_id` is null for an
-- orphan's time (operators only). The device's name and owner are kept as they were
-- when the day became final, in the tenant's own names.
create table usage_device_day (
  day          date not null,
  shard_id     uuid not null,
  tenant_id    uuid,
  node_id      bigint not null,
  seconds      integer not null,
  device_name  text not null,
  owner        text not null,
  final        boolean not null default false,
  constraint usage_device_day_shard_fkey foreign key (shard_id) references shard (id),
  constraint usage_device_day_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint usage_device_day_seconds_check check (seconds between 1 and 86400)
);
-- A node that changed tenant during a day has one row per tenant.
create unique index usage_device_day_key on usage_device_day
  (shard_id, day, coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), node_id);
create index usage_device_day_tenant_idx on usage_device_day (tenant_id, day, node_id);

-- One UTC day's totals per tenant on a shard (tenant null: orphans), and for the whole
-- shard (`usage_shard_day`, devices counted once whatever their tenant). Days without
-- usage have no row.
create table usage_day (
  day             date not null,
  shard_id        uuid not null,
  tenant_id       uuid,
  active_devices  integer not null,
  device_seconds  bigint not null,
  peak_devices    integer not null,
  final           boolean not null default false,
  constraint usage_day_shard_fkey foreign key (shard_id) references shard (id),
  constraint usage_day_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint usage_day_counts_check check (active_devices > 0 and device_seconds > 0
    and peak_devices between 1 and active_devices)
);
create unique index usage_day_key on usage_day
  (shard_id, day, coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid));
create index usage_day_tenant_idx on usage_day (tenant_id, day);

create table usage_shard_day (
  day             date not null,
  shard_id        uuid not null,
  active_devices  integer not null,
  device_seconds  bigint not null,
  peak_devices    integer not null,
  final           boolean not null default false,
  constraint usage_shard_day_pkey primary key (shard_id, day),
  constraint usage_shard_day_shard_fkey foreign key (shard_id) references shard (id)
);

-- A closed month: one row per tenant and shard it used (and one per tenant without
-- usage, shard_id its shard at closing), frozen with the names of the time.
create table usage_month (
  month           date not null,
  tenant_id       uuid not null,
  shard_id        uuid,
  tenant_code     text not null,
  tenant_slug     text not null,
  tenant_name     text not null,
  plan            text not null,
  cluster_id      text not null,
  region          text not null,
  device_quota    integer not null,
  active_devices  integer not null,
  device_seconds  bigint not null,
  peak_devices    integer not null,
  days_with_usage integer not null,
  constraint usage_month_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint usage_month_first_day_check check (extract(day from month) = 1)
);
create unique index usage_month_key on usage_month
  (month, tenant_id, coalesce(shard_id, '00000000-0000-0000-0000-000000000000'::uuid));

create table usage_month_closed (
  month      date not null,
  closed_at  timestamptz not null default now(),
  constraint usage_month_closed_pkey primary key (month),
  constraint usage_month_closed_first_day_check check (extract(day from month) = 1)
);

alter table usage_device_day enable row level security;
create policy usage_device_day_scope on usage_device_day
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check ((select app_is_operator()));
alter table usage_day enable row level security;
create policy usage_day_scope on usage_day
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check ((select app_is_operator()));
alter table usage_month enable row level security;
create policy usage_month_scope on usage_month
  using (tenant_id = (select app_tenant_id()) or (select app_is_operator()))
  with check ((select app_is_operator()));
-- Whole-shard totals and the list of closed months say nothing about one tenant.
alter table usage_shard_day enable row level security;
create policy usage_shard_day_scope on usage_shard_day
  using ((select app_is_operator()))
  with check ((select app_is_operator()));

-- Only the rollup job writes these (as operator); final rows are never changed, which
-- the job's `where not final` enforces. Closed months are never changed at all.
grant select, insert, update, delete on usage_device_day, usage_day, usage_shard_day to portal_app;
grant select, insert on usage_month, usage_month_closed to portal_app;
