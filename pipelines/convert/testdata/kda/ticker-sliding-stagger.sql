-- A sliding window (the average and the highest price of each ticker
-- over the last ten seconds) and a stagger window (the trades of each
-- ticker in the minute after its first), as in the "Windowed Queries"
-- chapter of the Kinesis Data Analytics developer guide.

CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    ticker_symbol VARCHAR(4),
    avg_price     DOUBLE,
    max_price     REAL);

CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM ticker_symbol,
                  AVG(price) OVER W1 AS avg_price,
                  MAX(price) OVER W1 AS max_price
    FROM "SOURCE_SQL_STREAM_001"
    WINDOW W1 AS (
        PARTITION BY ticker_symbol
        RANGE INTERVAL '10' SECOND PRECEDING);

CREATE OR REPLACE STREAM STAGGER_STREAM (
    event_time    TIMESTAMP,
    ticker_symbol VARCHAR(4),
    ticker_count  INTEGER);

CREATE OR REPLACE PUMP STAGGER_PUMP AS
    INSERT INTO STAGGER_STREAM
        SELECT STREAM
            FLOOR(EVENT_TIME TO MINUTE),
            TICKER_SYMBOL,
            COUNT(TICKER_SYMBOL) AS ticker_count
        FROM "SOURCE_SQL_STREAM_001"
        WINDOWED BY STAGGER (
            PARTITION BY FLOOR(EVENT_TIME TO MINUTE), TICKER_SYMBOL
            RANGE INTERVAL '1' MINUTE);
