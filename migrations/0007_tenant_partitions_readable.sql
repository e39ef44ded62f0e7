-- A tenant's partitions (0004, 0006) become readable by name, under the same row-level security as their
-- parents, so the search statement can name them.
--
-- Why: a statement on the parents is planned afresh for every call. A plan kept across calls (a generic plan
-- of the prepared statement) would hold every tenant's partitions and lock all of them on every execution,
-- so it grows with the number of tenants. A statement naming one tenant's partitions has a generic plan that
-- touches only those: the runtime prepares one per tenant and skips the planner, which took about a quarter of
-- the search's database CPU (BENCHMARKS.md).
--
-- Isolation is unchanged: each partition gets the parent's policies, enabled and forced, so a query naming a
-- partition sees exactly what the same query through the parent sees (the current tenant's rows; for the
-- tenant's own partition, all of them; for another tenant's, none). Runtimes are granted SELECT only: every
-- write still goes through the parent, its policies and its triggers.

-- Polices a partition like its parent: row-level security enabled and forced, the tenant's policy for the
-- runtime roles, the owner's own, and SELECT for the runtime roles.
CREATE FUNCTION paddock_police_partition(p_name name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', p_name);
    EXECUTE format('CREATE POLICY tenant_isolation ON %I TO paddock_runtime, paddock_tenant '
                   'USING (tenant_id = paddock_current_tenant()) '
                   'WITH CHECK (tenant_id = paddock_current_tenant())', p_name);
    EXECUTE format('CREATE POLICY owner_all ON %I TO CURRENT_USER USING (true) WITH CHECK (true)', p_name);
    EXECUTE format('GRANT SELECT ON %I TO paddock_runtime, paddock_tenant', p_name);
END
$$;
REVOKE ALL ON FUNCTION paddock_police_partition(name) FROM PUBLIC;

CREATE OR REPLACE FUNCTION paddock_create_tenant_partition(p_parent name, p_name name, p_tenant text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF to_regclass(quote_ident(p_name)) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                   p_name, p_parent);
    PERFORM paddock_police_partition(p_name);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)', p_parent, p_name, p_tenant);
END
$$;

SELECT paddock_police_partition(paddock_documents_partition(id)),
       paddock_police_partition(paddock_postings_partition(id))
  FROM tenants;
