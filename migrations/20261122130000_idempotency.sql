-- Idempotency keys of the REST API (docs/api.md, docs/reliability.md): a client that
-- did not get an answer (a timeout, a restart of the portal or of Postgres) sends the
-- same request again with the same `Idempotency-Key` and the change happens once.
--
-- A request with a key holds a session-level advisory lock on it while it runs (a
-- second request with the key meanwhile is told "in progress"; the lock goes away with
-- the connection if the portal or Postgres dies). The change's own transaction writes
-- the row as `committed`, so a change never commits without its key being used; after
-- the answer the row becomes `done` with the answer, which is replayed to a retry. The
-- answer is sealed with the portal's secret key (it may hold a pre-auth key shown once).
-- Rows are kept 24 hours.
create table api_idempotency (
  token_id      uuid not null references api_token (id) on delete cascade,
  key           text not null,
  -- SHA-256 of method, path, query and body: the same key with another request is refused.
  request_hash  bytea not null,
  state         text not null,
  claimed_at    timestamptz not null default now(),
  status        smallint,
  content_type  text,
  body_sealed   bytea,
  primary key (token_id, key),
  constraint api_idempotency_key_check check (char_length(key) between 1 and 255),
  constraint api_idempotency_state_check check (state in ('committed', 'done')),
  constraint api_idempotency_done_check check ((state = 'done') = (status is not null))
);
create index api_idempotency_claimed_idx on api_idempotency (claimed_at);

-- Reached only through a token the request authenticated with (the primary key starts
-- with it), so no tenant policy is needed: one token never names another's rows.
grant select, insert, update, delete on api_idempotency to portal_app;
