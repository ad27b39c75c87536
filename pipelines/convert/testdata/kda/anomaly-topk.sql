-- Anomalous price changes (RANDOM_CUT_FOREST over the numeric columns,
-- as the developer guide's anomaly detection example), the ones that
-- score above 3 kept, and the three most traded tickers of each minute.

CREATE OR REPLACE STREAM "TEMP_STREAM" (
    "TICKER_SYMBOL" VARCHAR(4),
    "SECTOR"        VARCHAR(16),
    "CHANGE"        REAL,
    "PRICE"         REAL,
    "ANOMALY_SCORE" DOUBLE);

CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "TICKER_SYMBOL" VARCHAR(4),
    "SECTOR"        VARCHAR(16),
    "CHANGE"        REAL,
    "PRICE"         REAL,
    "ANOMALY_SCORE" DOUBLE);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "TEMP_STREAM"
    SELECT STREAM "TICKER_SYMBOL", "SECTOR", "CHANGE", "PRICE", "ANOMALY_SCORE"
    FROM TABLE(RANDOM_CUT_FOREST(
        CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"),
        100,   -- numberOfTrees
        256,   -- subSampleSize
        100000,-- timeDecay
        1      -- shingleSize
    ));

CREATE OR REPLACE PUMP "OUTPUT_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM * FROM "TEMP_STREAM"
    WHERE ANOMALY_SCORE > 3.0
    ORDER BY FLOOR("TEMP_STREAM".ROWTIME TO SECOND), ANOMALY_SCORE DESC;

CREATE OR REPLACE STREAM TOP_TICKERS (
    "TICKER_SYMBOL"        VARCHAR(4),
    "MOST_FREQUENT_VALUES" BIGINT);

CREATE OR REPLACE PUMP TOP_PUMP AS INSERT INTO TOP_TICKERS
    SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(
        CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"),
        'TICKER_SYMBOL', -- the column whose most frequent values are counted
        3,               -- how many values
        60               -- the tumbling window's size in seconds
    ));
