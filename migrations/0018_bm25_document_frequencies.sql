-- Document frequencies per tenant and term, so the lexical arm can rank without reading whole posting lists.
--
-- Why: the lexical arm counted df(t) over t's postings at query time (0006) and then summed every posting of
-- every query term. Both grow with the corpus: a query that keeps a common word reads hundreds of thousands of
-- postings in a tenant of a million documents. The search now prunes (MaxScore, `runtime/src/search.rs`): it
-- skips the postings of terms that cannot lift a document into the top results and only probes them for the
-- few documents that can still get there. That needs df before any list is read, so df moves here.
--
-- Why deltas, as bm25_stats (0002): a row per (tenant, term) would be a hot row for common words, serialising
-- every writer of the tenant until commit and deadlocking two multi-document transactions. Instead each
-- document write appends one row per term it adds (+1) or removes (-1) in the same transaction, so df is the
-- sum of a term's rows, exact in every snapshot, and inserts never wait for each other. Now and then (one
-- document write in 64, at most once per transaction) the writer folds the unfolded rows into one row per
-- term, under a try-lock so folds never wait or overlap. A fold sees only committed rows and its own transaction's, so it never touches
-- another writer's rows; under REPEATABLE READ it could meet rows another fold removed, so it is left to
-- read-committed writers (the runtime's). Unfolded rows are found through a partial index, so a fold costs
-- what was written since the last one.
--
-- Layout: partitioned by tenant like documents and postings, created and dropped with the tenant by the same
-- trigger and policed the same way (0007). Terms use the C collation, as in the postings.
--
-- Cost: one row per distinct term per document write (about 90 for a 150-word text) beside the postings' own
-- rows, and a fold of about 64 writes' rows every 64 writes.

CREATE TABLE bm25_terms (
    tenant_id text NOT NULL,
    term      text COLLATE "C" NOT NULL,
    docs      integer NOT NULL,
    folded    boolean NOT NULL DEFAULT false
) PARTITION BY LIST (tenant_id);
CREATE INDEX bm25_terms_term ON bm25_terms (tenant_id, term) INCLUDE (docs);
CREATE INDEX bm25_terms_unfolded ON bm25_terms (tenant_id, term) WHERE NOT folded;

-- Row-level security, enabled and forced, and read-only grants, as on the partitions (0007's function).
SELECT paddock_police_partition('bm25_terms');

CREATE FUNCTION paddock_terms_partition(p_tenant text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('bm25_terms_' || left(md5(p_tenant), 16))::name $$;

-- A tenant's row brings its documents', postings' and terms' partitions, and takes them with it.
CREATE OR REPLACE FUNCTION paddock_tenants_partition() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM paddock_create_tenant_partition('documents', paddock_documents_partition(NEW.id), NEW.id);
        PERFORM paddock_create_tenant_partition('bm25_postings', paddock_postings_partition(NEW.id), NEW.id);
        PERFORM paddock_create_tenant_partition('bm25_terms', paddock_terms_partition(NEW.id), NEW.id);
    ELSE
        -- Dropped without per-row triggers: bm25_stats goes with the tenant, the rest with their partitions.
        EXECUTE format('DROP TABLE IF EXISTS %I', paddock_documents_partition(OLD.id));
        EXECUTE format('DROP TABLE IF EXISTS %I', paddock_postings_partition(OLD.id));
        EXECUTE format('DROP TABLE IF EXISTS %I', paddock_terms_partition(OLD.id));
    END IF;
    RETURN NULL;
END
$$;

SELECT paddock_create_tenant_partition('bm25_terms', paddock_terms_partition(id), id) FROM tenants;

INSERT INTO bm25_terms (tenant_id, term, docs, folded)
SELECT tenant_id, term, count(*), true FROM bm25_postings GROUP BY tenant_id, term;

-- Folds a tenant's unfolded rows into one row per term; terms no document holds any more lose their rows.
-- The caller holds the tenant's fold lock (above) or is the only writer (a load).
CREATE FUNCTION paddock_bm25_terms_fold(p_tenant text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH touched AS (
        SELECT DISTINCT term FROM bm25_terms WHERE tenant_id = p_tenant AND NOT folded
    ), gone AS (
        DELETE FROM bm25_terms b USING touched t
         WHERE b.tenant_id = p_tenant AND b.term = t.term
        RETURNING b.term, b.docs
    )
    INSERT INTO bm25_terms (tenant_id, term, docs, folded)
    SELECT p_tenant, term, sum(docs), true FROM gone GROUP BY term HAVING sum(docs) <> 0
$$;
REVOKE ALL ON FUNCTION paddock_bm25_terms_fold(text) FROM PUBLIC;

-- Counts document writes, so one in 64 folds.
CREATE SEQUENCE paddock_bm25_terms_writes;

-- The postings of one document version (0006) and, now, the document frequencies it moves.
CREATE OR REPLACE FUNCTION paddock_bm25_postings_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    v_tenant text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        -- By the old version's own terms, so the delete walks the primary key.
        DELETE FROM bm25_postings
         WHERE tenant_id = OLD.tenant_id AND term = ANY (tsvector_to_array(OLD.tsv)) AND doc_id = OLD.id;
        -- A tenant being deleted takes its terms with their partition: nothing to record.
        IF EXISTS (SELECT 1 FROM tenants t WHERE t.id = OLD.tenant_id) THEN
            INSERT INTO bm25_terms (tenant_id, term, docs)
            SELECT OLD.tenant_id, t, -1 FROM unnest(tsvector_to_array(OLD.tsv)) AS t;
        END IF;
        v_tenant := OLD.tenant_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO bm25_postings (tenant_id, term, doc_id, tf, dl)
        SELECT NEW.tenant_id, m.lexeme, NEW.id, coalesce(cardinality(m.positions), 1), NEW.bm25_length
          FROM unnest(NEW.tsv) AS m;
        INSERT INTO bm25_terms (tenant_id, term, docs)
        SELECT NEW.tenant_id, t, 1 FROM unnest(tsvector_to_array(NEW.tsv)) AS t;
        v_tenant := NEW.tenant_id;
    END IF;
    -- At most one fold per transaction: within one, the rows a fold replaces stay in the indexes until it
    -- ends, so a long transaction folding again and again (a bulk load) would rescan them each time. What a
    -- long transaction appends is folded by the next writer's fold, or by calling the function.
    IF nextval('paddock_bm25_terms_writes') % 64 = 0
       AND current_setting('transaction_isolation') = 'read committed'
       AND current_setting('paddock.bm25_terms_folded', true) IS DISTINCT FROM 'on'
       AND pg_try_advisory_xact_lock(hashtext('paddock.bm25_terms'), hashtext(v_tenant)) THEN
        PERFORM set_config('paddock.bm25_terms_folded', 'on', true);
        PERFORM paddock_bm25_terms_fold(v_tenant);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION paddock_bm25_postings_track() FROM PUBLIC;
