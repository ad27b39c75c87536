-- A Kinesis Data Analytics (SQL) application: requests and errors per
-- route and minute, and how many distinct users each minute.
--   bin/sluice convert --stream clickstream -o pipeline.yaml examples/convert/application.sql
-- cmd/sluice/convert_test.go converts it and runs it over generated
-- clickstream records.

CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "route"     VARCHAR(64),
    "requests"  BIGINT,
    "avg_bytes" DOUBLE,
    "max_ms"    INTEGER);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS
    INSERT INTO "DESTINATION_SQL_STREAM"
        SELECT STREAM "path", COUNT(*), AVG("bytes"), MAX("latency_ms")
        FROM "SOURCE_SQL_STREAM_001"
        WHERE "method" <> 'OPTIONS'
        GROUP BY "path", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);

CREATE OR REPLACE STREAM "USERS_PER_MINUTE" ("NUMBER_OF_DISTINCT_ITEMS" BIGINT);

CREATE OR REPLACE PUMP "USERS_PUMP" AS
    INSERT INTO "USERS_PER_MINUTE"
        SELECT STREAM * FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(
            CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"),
            'user', 60));
