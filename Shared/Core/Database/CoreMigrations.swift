/// Tables the core keeps in every service's database, applied before the service's own
/// migrations. Their versions start at 1,000,001 so they never meet a service's `NNNN_name.sql`.
public enum CoreMigrations {
  public static let all: [Migration] = [
    Migration(
      version: 1_000_001, name: "core_jobs",
      sql: """
        -- Durable background jobs (seed 001 tasks): claimed with FOR UPDATE SKIP LOCKED, leased,
        -- retried with backoff, woken by NOTIFY platform_jobs.
        CREATE TABLE jobs (
            id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
            type TEXT NOT NULL CHECK (char_length(type) BETWEEN 1 AND 100),
            state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            priority SMALLINT NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
            dedup_key TEXT CHECK (char_length(dedup_key) <= 200),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
            scheduled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            lease_holder TEXT,
            lease_expires_at TIMESTAMPTZ,
            cancel_requested BOOLEAN NOT NULL DEFAULT false,
            payload JSONB NOT NULL DEFAULT '{}'::jsonb,
            last_error TEXT,
            trace_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at TIMESTAMPTZ,
            CONSTRAINT chk_jobs_lease CHECK ((state = 'running') = (lease_holder IS NOT NULL AND lease_expires_at IS NOT NULL))
        );
        CREATE UNIQUE INDEX idx_jobs_dedup_key ON jobs(dedup_key) WHERE dedup_key IS NOT NULL;
        -- What a claim scans: queued jobs of a type, highest priority first, oldest first.
        CREATE INDEX idx_jobs_claim ON jobs(type, priority DESC, scheduled_at, id) WHERE state = 'queued';
        -- What the lease sweep scans.
        CREATE INDEX idx_jobs_lease ON jobs(lease_expires_at) WHERE state = 'running';
        CREATE INDEX idx_jobs_state_updated ON jobs(state, updated_at);

        CREATE TABLE job_events (
            id BIGSERIAL PRIMARY KEY,
            job_id UUID NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            event TEXT NOT NULL CHECK (event IN ('enqueued', 'claimed', 'succeeded', 'retried', 'failed', 'cancelled', 'lease_expired', 'released')),
            attempt INTEGER NOT NULL,
            worker TEXT,
            detail TEXT,
            trace_id TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX idx_job_events_job ON job_events(job_id, id);
        """),
    Migration(
      version: 1_000_002, name: "core_auth_audit_log",
      sql: """
        -- Who was let in or refused, and why (seed 000 auth_audit_log), in every service's own
        -- database: logins, refreshes, key changes, role changes, and every refused call.
        CREATE TABLE auth_audit_log (
            id BIGSERIAL PRIMARY KEY,
            trace_id VARCHAR(64) NOT NULL,
            -- The policy that decided, once column policies exist (seed 000 auth_policy).
            auth_policy_id BIGINT,
            -- A user id, an API key id, or for a failed login the SHA-256 of the email tried.
            subject_id VARCHAR(64) NOT NULL,
            resource VARCHAR(128) NOT NULL,
            action VARCHAR(32) NOT NULL,
            decision VARCHAR(16) NOT NULL CHECK (decision IN ('allow', 'deny', 'mask')),
            masked_fields JSONB NOT NULL DEFAULT '[]'::jsonb,
            -- Why (a refusal's reason, the peer): at most 2 KB of JSON.
            detail JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (octet_length(detail::text) <= 2048),
            created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX idx_auth_audit_log_created ON auth_audit_log(created_at DESC, id DESC);
        CREATE INDEX idx_auth_audit_log_subject ON auth_audit_log(subject_id, created_at DESC);
        CREATE INDEX idx_auth_audit_log_action ON auth_audit_log(action, created_at DESC);
        """),
  ]
}
