SELECT verb, count(*) AS n FROM events GROUP BY verb ORDER BY n DESC, verb
SELECT user_name, count(*) FROM events WHERE response_code = 403 GROUP BY user_name ORDER BY 2 DESC LIMIT 10
SELECT audit_id, event_time FROM events WHERE verb = $1 ORDER BY event_time LIMIT 5
WITH x AS (SELECT * FROM alerts WHERE severity IN ('critical', 'high')) SELECT rule_id, count(*) FROM x GROUP BY rule_id
SELECT e.user_name, a.rule_id FROM events e JOIN alerts a ON e.audit_id = a.audit_id WHERE a.event_time > now() - INTERVAL '1 day'
SELECT * FROM events WHERE 'kube-system' = namespace UNION ALL SELECT * FROM events WHERE namespace IS NULL
SELECT date_trunc('hour', event_time) AS hour, count(*) FROM events GROUP BY 1 ORDER BY 1
SELECT source_ips[1], array_length(source_ips, 1) FROM events WHERE cardinality(source_ips) > 1
SELECT json_get_str(request_object, 'spec', 'containers') FROM events WHERE resource = 'pods'
SELECT regexp_like(user_name, '^system:serviceaccount:(.*)$') FROM events
VALUES (1, 'a'), (2, 'b')
EXPLAIN SELECT count(*) FROM events WHERE cluster = 'prod'
SHOW TABLES
SELECT table_name, column_name FROM information_schema.columns WHERE table_name = 'events'
SELECT (SELECT max(event_time) FROM alerts) AS last, count(DISTINCT audit_id) FROM events
SELECT CAST('2025-11-03T10:00:00Z' AS TIMESTAMP), 1e308 * 10, -9223372036854775808, 'it''s'
DROP TABLE events
COPY events TO '/tmp/stolen.csv'
COPY (SELECT * FROM events) TO '/tmp/x.parquet' STORED AS PARQUET
SET datafusion.execution.batch_size = 1
CREATE TABLE t AS SELECT * FROM events
CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'
CREATE VIEW v AS SELECT 1
INSERT INTO events (audit_id) VALUES ('x')
DELETE FROM events WHERE true
UPDATE alerts SET severity = 'low'
SELECT * FROM '/etc/passwd'
BEGIN; SELECT 1; COMMIT
PREPARE p AS SELECT 1; EXECUTE p
DEALLOCATE ALL
