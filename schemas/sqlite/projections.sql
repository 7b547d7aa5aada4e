-- Projections on the embedded store (SQLite), written by callgrid-projector.
-- Every table keeps the full row as JSON in `data` (what the store reads back) beside the
-- columns that reports filter and sort by, and the log position the row reflects (p, o).
CREATE TABLE IF NOT EXISTS tenants (
  tenant TEXT PRIMARY KEY, data TEXT NOT NULL, p INTEGER NOT NULL, o INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_queues (
  tenant TEXT NOT NULL, queue TEXT NOT NULL, data TEXT NOT NULL,
  p INTEGER NOT NULL, o INTEGER NOT NULL, PRIMARY KEY (tenant, queue)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_agents (
  tenant TEXT NOT NULL, agent TEXT NOT NULL, state TEXT NOT NULL, data TEXT NOT NULL,
  p INTEGER NOT NULL, o INTEGER NOT NULL, PRIMARY KEY (tenant, agent)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live_calls (
  tenant TEXT NOT NULL, call TEXT NOT NULL, state TEXT NOT NULL, data TEXT NOT NULL,
  p INTEGER NOT NULL, o INTEGER NOT NULL, PRIMARY KEY (tenant, call)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS live_calls_state ON live_calls (tenant, state);
CREATE TABLE IF NOT EXISTS call_records (
  tenant TEXT NOT NULL, call TEXT NOT NULL, start_ms INTEGER NOT NULL, day TEXT NOT NULL,
  number TEXT NOT NULL, caller TEXT NOT NULL, queue TEXT NOT NULL, agent TEXT NOT NULL,
  result TEXT NOT NULL, data TEXT NOT NULL, p INTEGER NOT NULL, o INTEGER NOT NULL,
  PRIMARY KEY (tenant, call)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS call_records_start ON call_records (tenant, start_ms);
CREATE TABLE IF NOT EXISTS call_offers (
  tenant TEXT NOT NULL, call TEXT NOT NULL, seq INTEGER NOT NULL, agent TEXT NOT NULL,
  queue TEXT NOT NULL, result TEXT NOT NULL, offered_ms INTEGER NOT NULL, data TEXT NOT NULL,
  p INTEGER NOT NULL, o INTEGER NOT NULL, PRIMARY KEY (tenant, call, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_states (
  tenant TEXT NOT NULL, agent TEXT NOT NULL, start_ms INTEGER NOT NULL,
  start_offset INTEGER NOT NULL, end_ms INTEGER NOT NULL, state TEXT NOT NULL,
  data TEXT NOT NULL, p INTEGER NOT NULL, o INTEGER NOT NULL,
  PRIMARY KEY (tenant, agent, start_ms, start_offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS intervals (
  tenant TEXT NOT NULL, start_ms INTEGER NOT NULL, subject TEXT NOT NULL, id TEXT NOT NULL,
  data TEXT NOT NULL, p INTEGER NOT NULL, o INTEGER NOT NULL,
  PRIMARY KEY (tenant, start_ms, subject, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
  partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL
);
