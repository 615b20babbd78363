-- What the portal knows about the pre-auth keys it minted that Headscale does not keep:
-- who made the key and why. Never the key itself (Headscale shows it once; the portal
-- passes it to the person and forgets it). The mirror row (`pre_auth_key`) is written
-- by the sync; this one by the portal, at minting.
create table pre_auth_key_meta (
  shard_id      uuid not null,
  key_id        bigint not null,
  tenant_id     uuid not null,
  created_by    uuid not null,
  description   text not null default '',
  created_at    timestamptz not null default now(),
  constraint pre_auth_key_meta_pkey primary key (shard_id, key_id),
  constraint pre_auth_key_meta_shard_fkey foreign key (shard_id) references shard (id),
  constraint pre_auth_key_meta_tenant_fkey foreign key (tenant_id) references tenant (id),
  constraint pre_auth_key_meta_person_fkey foreign key (created_by) references person (id),
  constraint pre_auth_key_meta_key_id_check check (key_id > 0),
  constraint pre_auth_key_meta_description_check check (char_length(description) <= 200)
);
create index pre_auth_key_meta_tenant_idx on pre_auth_key_meta (tenant_id);

alter table pre_auth_key_meta enable row level security;
create policy pre_auth_key_meta_scope on pre_auth_key_meta
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());

grant select, insert on pre_auth_key_meta to portal_app;
