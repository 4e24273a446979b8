-- Run once by the postgres image on an empty data directory (deploy/compose.yaml).
-- MLflow's tracking store and the audit store get a database each. The audit service connects as the
-- owner (it migrates the schema), then SET ROLE audit_app: a role granted only SELECT and INSERT on
-- audit_events by the migration (AUDIT_DATABASE_APP_ROLE, docs/audit.md). No password lives here.
CREATE DATABASE mlflow OWNER mlops;
CREATE DATABASE audit OWNER mlops;
CREATE ROLE audit_app NOLOGIN;
GRANT audit_app TO mlops;
