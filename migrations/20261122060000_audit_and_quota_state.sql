-- The audit log's table (DESIGN.md §5; the pages and the full set of recorded actions
-- come with member management, issue 7), first used for quota events; and each tenant's
-- over-quota state.
--
-- Append-only for the application: it may insert and read audit rows, never change or
-- delete them (no grant; the owner role alone could).
create table audit_event (
  id               bigint generated always as identity,
  at               timestamptz not null default now(),
  -- Null for service-wide events (shards, operators).
  tenant_id        uuid,
  -- 'person' (actor_person_id), 'system' (the portal itself: the sync), 'token'.
  actor_kind       text not null,
  actor_person_id  uuid,
  -- A dotted verb, e.g. 'tenant.quota_exceeded', 'device.renamed'.
  action           text not null,
  target           text not null default '',
  detail           jsonb not null default '{}',
  constraint audit_event_pkey primary key (id),
  constraint audit_event_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint audit_event_person_fkey foreign key (actor_person_id) references person (id),
  constraint audit_event_actor_kind_check check (actor_kind in ('person', 'system', 'token')),
  constraint audit_event_actor_check check ((actor_kind = 'person') = (actor_person_id is not null))
);
create index audit_event_tenant_at_idx on audit_event (tenant_id, at desc);

alter table audit_event enable row level security;
create policy audit_event_scope on audit_event
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());
grant select, insert on audit_event to portal_app;

-- Since when the tenant has more devices than its device quota (devices can slip over
-- it through reusable keys); null while within it. Set and cleared by the sync, which
-- records each change in the audit log. Nothing is removed automatically.
alter table tenant add column over_quota_since timestamptz;
