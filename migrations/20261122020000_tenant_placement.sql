-- Tenant quotas and placement (docs/placement.md).

alter table tenant
  add column device_quota integer not null default 100,
  add column key_quota integer not null default 20,
  -- Why placement chose the shard, in a sentence for operators.
  add column placement_reason text,
  add constraint tenant_device_quota_check check (device_quota between 1 and 100000),
  add constraint tenant_key_quota_check check (key_quota between 0 and 100000);

alter table shard
  -- A shard reserved for one tenant takes no other.
  add column dedicated_tenant_id uuid,
  -- Plans this shard serves; empty means any plan.
  add column plans text[] not null default '{}',
  add constraint shard_dedicated_tenant_fkey foreign key (dedicated_tenant_id) references tenant (id);
