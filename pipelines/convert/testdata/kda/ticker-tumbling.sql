-- Trades of the technology sector, per ticker and minute, from the
-- stock ticker demo stream of the Kinesis Data Analytics developer guide
-- (columns TICKER_SYMBOL, SECTOR, CHANGE, PRICE), and how many tickers
-- traded each minute.

CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    TICKER_SYMBOL VARCHAR(4),
    WINDOW_TIME   TIMESTAMP,
    TRADES        INTEGER,
    AVG_PRICE     DOUBLE,
    MIN_PRICE     REAL,
    MAX_PRICE     REAL,
    TOTAL_CHANGE  REAL);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS
    INSERT INTO "DESTINATION_SQL_STREAM"
        SELECT STREAM TICKER_SYMBOL,
                      STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
                      COUNT(*),
                      AVG(PRICE),
                      MIN(PRICE),
                      MAX(PRICE),
                      SUM(CHANGE)
        FROM "SOURCE_SQL_STREAM_001"
        WHERE SECTOR = 'TECHNOLOGY' AND PRICE > 0
        GROUP BY TICKER_SYMBOL,
                 STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND)
        HAVING COUNT(*) >= 2;

CREATE OR REPLACE STREAM DISTINCT_TICKERS (NUMBER_OF_DISTINCT_ITEMS BIGINT);

CREATE OR REPLACE PUMP "DISTINCT_PUMP" AS
    INSERT INTO DISTINCT_TICKERS
        SELECT STREAM * FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(
            CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"),
            'TICKER_SYMBOL',  -- the column whose distinct values are counted
            60                -- the tumbling window's size in seconds
        ));
