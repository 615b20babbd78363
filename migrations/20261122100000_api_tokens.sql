-- API tokens (issue 7, docs/api.md): per tenant with a role ceiling, or operator tokens
-- for the operator endpoints. The secret is shown once; only its SHA-256 is stored. A
-- token acts for the person who made it, never above that person's current role (the
-- ceiling caps it), and stops working when that person loses the membership (or, for
-- an operator token, operator status).
create table api_token (
  id            uuid not null default gen_random_uuid(),
  -- Null for an operator token.
  tenant_id     uuid,
  -- The first characters of the secret after its prefix, shown in lists to tell tokens
  -- apart (`hsp_3f9a…`). Not enough to use it.
  hint          text not null,
  secret_sha256 bytea not null,
  name          text not null,
  -- The highest tenant role the token may act with (null for operator tokens).
  role_ceiling  text,
  created_by    uuid not null,
  created_at    timestamptz not null default now(),
  expires_at    timestamptz not null,
  revoked_at    timestamptz,
  revoked_by    uuid,
  last_used_at  timestamptz,
  constraint api_token_pkey primary key (id),
  constraint api_token_secret_key unique (secret_sha256),
  constraint api_token_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
  constraint api_token_created_by_fkey foreign key (created_by) references person (id),
  constraint api_token_revoked_by_fkey foreign key (revoked_by) references person (id),
  constraint api_token_name_check check (length(name) between 1 and 80),
  constraint api_token_role_check check (
    (tenant_id is null and role_ceiling is null)
    or (tenant_id is not null and role_ceiling in
        ('owner', 'admin', 'network_admin', 'it_admin', 'billing_admin', 'auditor', 'member'))),
  constraint api_token_expiry_check check (expires_at > created_at)
);
create index api_token_tenant_idx on api_token (tenant_id, created_at desc);

alter table api_token enable row level security;
-- A tenant's tokens in its scope; operator tokens only in the operator scope. Looking a
-- token up by its hash happens in the trusted scope (before anyone is known).
create policy api_token_scope on api_token
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());
grant select, insert, update on api_token to portal_app;

-- The audit log names the token that acted (its person is the token's maker).
alter table audit_event add column actor_token_id uuid;
alter table audit_event add constraint audit_event_token_fkey
  foreign key (actor_token_id) references api_token (id);
alter table audit_event drop constraint audit_event_actor_check;
alter table audit_event add constraint audit_event_actor_check check (
  (actor_kind = 'person' and actor_person_id is not null and actor_token_id is null)
  or (actor_kind = 'token' and actor_token_id is not null)
  or (actor_kind = 'system' and actor_person_id is null and actor_token_id is null));
