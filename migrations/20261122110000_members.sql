-- Member management (issue 7, docs/members.md): invitations by email, and ending a
-- removed member's sessions.

-- Sessions signed in at or before this moment are ended at their next request (a member
-- was removed from a tenant). Compared with the session's own sign-in time (whole
-- seconds), so a new sign-in works from the next second on.
alter table person add column sessions_not_before timestamptz;

-- An invitation to join a tenant with a role, accepted at the invited person's next
-- sign-in whose (verified) email matches. Closed by acceptance or revocation; an open
-- invitation past `expires_at` is expired (nothing needs to run for that).
create table invitation (
  id           uuid not null default gen_random_uuid(),
  tenant_id    uuid not null,
  -- Lower case; compared with the sign-in's email in lower case.
  email        text not null,
  role         text not null,
  invited_by   uuid not null,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz not null,
  accepted_at  timestamptz,
  accepted_by  uuid,
  revoked_at   timestamptz,
  revoked_by   uuid,
  constraint invitation_pkey primary key (id),
  constraint invitation_tenant_fkey foreign key (tenant_id) references tenant (id) on delete cascade,
  constraint invitation_invited_by_fkey foreign key (invited_by) references person (id),
  constraint invitation_accepted_by_fkey foreign key (accepted_by) references person (id),
  constraint invitation_revoked_by_fkey foreign key (revoked_by) references person (id),
  constraint invitation_email_check check (email = lower(email) and email ~ '^[^@\s]+@[^@\s]+$'
                                           and char_length(email) <= 254),
  constraint invitation_role_check check (role in
    ('owner', 'admin', 'network_admin', 'it_admin', 'billing_admin', 'auditor', 'member')),
  constraint invitation_expiry_check check (expires_at > created_at),
  constraint invitation_closed_once_check check (accepted_at is null or revoked_at is null)
);
create index invitation_tenant_idx on invitation (tenant_id, created_at desc);
-- Sign-in looks open invitations up by email, across tenants (trusted scope).
create index invitation_open_email_idx on invitation (email)
  where accepted_at is null and revoked_at is null;

alter table invitation enable row level security;
create policy invitation_scope on invitation
  using (tenant_id = app_tenant_id() or app_is_operator())
  with check (tenant_id = app_tenant_id() or app_is_operator());

-- Never deleted by the application: an invitation is history (who invited whom).
grant select, insert on invitation to portal_app;
grant update (accepted_at, accepted_by, revoked_at, revoked_by) on invitation to portal_app;
