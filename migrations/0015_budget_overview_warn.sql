-- The budget overview also returns each tenant's warning threshold (`warn_at_percent`, the Tenant's
-- `spec.budget.warnAtPercent`), so the runtime publishes it beside the budget gauges and an alert compares each
-- tenant's spend with its own threshold instead of one number for all. A function's result columns cannot be
-- changed in place: it is dropped and made again, with the same body, fence and grants as in 0012.
DROP FUNCTION paddock_budget_overview();

CREATE FUNCTION paddock_budget_overview()
RETURNS TABLE (tenant_id text, currency text, budget numeric, spent numeric, reserved numeric,
               warn_at_percent integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.currency, t.budget_monthly, COALESCE(p.spent, 0), COALESCE(p.reserved, 0), t.warn_at_percent
      FROM tenants t
      LEFT JOIN budget_periods p ON p.tenant_id = t.id AND p.period_start = paddock_budget_period()
     WHERE paddock_session_serves(t.id)
$$;
REVOKE ALL ON FUNCTION paddock_budget_overview() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_budget_overview() TO paddock_runtime, paddock_tenant;
