package convert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirehoseErrors: input that is not a convertible description is an
// error that says what is wrong and what to give.
func TestFirehoseErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "firehose", "clickstream-dynamic.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "empty input"},
		{"not JSON", "DeliveryStreamName: x", "line 1 column 1: not valid JSON"},
		{"truncated", string(good[:len(good)/2]), "not valid JSON"},
		{"two values", `{"DeliveryStreamName":"a","Destinations":[]} {}`, "more than one JSON value"},
		{"array", `[1,2]`, "not a delivery stream description"},
		{"no name", `{"DeliveryStreamDescription":{"Destinations":[]}}`, "no DeliveryStreamName"},
		{"wrong type", `{"DeliveryStreamName":"a","Destinations":"s3"}`, "Destinations is a JSON string"},
		{"hints wrong type", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","BufferingHints":{"SizeInMBs":"5"}}}]}`, "is a JSON string"},
		{"no destination", `{"DeliveryStreamName":"a","Destinations":[]}`, "0 destinations"},
		{"redshift", `{"DeliveryStreamName":"a","Destinations":[{"RedshiftDestinationDescription":{}}]}`, "RedshiftDestinationDescription: sluice convert converts S3 destinations"},
		{"bad bucket", `{"DeliveryStreamName":"a","Destinations":[{"S3DestinationDescription":{"BucketARN":"logs"}}]}`, `BucketARN "logs" is not an S3 bucket ARN`},
		{"bucket path", `{"DeliveryStreamName":"a","Destinations":[{"S3DestinationDescription":{"BucketARN":"arn:aws:s3:::a/../b"}}]}`, "is not an S3 bucket ARN"},
		{"buffer range", `{"DeliveryStreamName":"a","Destinations":[{"S3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","BufferingHints":{"SizeInMBs":4096}}}]}`, "Firehose takes 1 to 128 MiB"},
		{"compression", `{"DeliveryStreamName":"a","Destinations":[{"S3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","CompressionFormat":"LZ4"}}]}`, `CompressionFormat "LZ4"`},
		{"time zone", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","CustomTimeZone":"Mars/Olympus"}}]}`, "CustomTimeZone"},
		{"jq", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","ProcessingConfiguration":{"Enabled":true,"Processors":[{"Type":"MetadataExtraction","Parameters":[{"ParameterName":"MetadataExtractionQuery","ParameterValue":".customer"}]}]}}}]}`, "not a JQ object"},
		{"backup missing", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","S3BackupMode":"Enabled"}}]}`, "no S3BackupDescription"},
		{"control character", `{"DeliveryStreamName":"a","Destinations":[{"S3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","Prefix":"a\nb: c"}}]}`, "Destinations[0].S3DestinationDescription.Prefix holds a control character"},
		{"stream name", `{"DeliveryStreamName":"a b","Destinations":[]}`, "not a delivery stream's name"},
		{"oversized", `{"DeliveryStreamName":"` + strings.Repeat("a", MaxInputSize) + `"}`, "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Firehose([]byte(tc.in), FirehoseOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestFirehoseHostile: values of the description cannot reach the
// pipeline file's interpolation or break out of a comment or a value.
func TestFirehoseHostile(t *testing.T) {
	in := `{"DeliveryStreamName":"x","DeliveryStreamType":"${HOME}","DeliveryStreamARN":"arn:aws:firehose:us-east-1:1:deliverystream/x",
	"Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bucket","Prefix":"a/${AWS_SECRET_ACCESS_KEY}/!{timestamp:yyyy}/","ErrorOutputPrefix":"../!{timestamp:EEE}/",
	"FileExtension":".x","RoleARN":"r- name: evil"}}]}`
	res, err := Firehose([]byte(in), FirehoseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "hostile", res)
	y := string(res.YAML)
	if strings.Contains(y, "\nsinks: []") || strings.Contains(y, "\n- name: evil") || strings.Contains(y, "\nname: evil") {
		t.Errorf("input text became YAML:\n%s", y)
	}
	for _, line := range strings.Split(y, "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && strings.Contains(strings.ReplaceAll(l, "$${", ""), "${") {
			t.Errorf("a ${VAR} of the input is not escaped: %s", line)
		}
	}
	if !strings.Contains(y, "prefix: a/$${AWS_SECRET_ACCESS_KEY}/!{timestamp:yyyy}/") {
		t.Errorf("the prefix is not kept, escaped:\n%s", y)
	}
}

// TestFirehoseSmallForms: the legacy S3 destination, a prefix without
// expressions, an unknown JQ value and a key the query does not define
// each convert, with their comments, into a valid pipeline.
func TestFirehoseSmallForms(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"legacy", `{"DeliveryStreamName":"Legacy.Stream_1","Destinations":[{"S3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","Prefix":"logs/"}}]}`,
			[]string{"name: legacy-stream-1", "prefix: logs/!{timestamp:yyyy/MM/dd/HH}/", "Direct PUT", "records back to back"}},
		{"jq function", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","Prefix":"c=!{partitionKeyFromQuery:c}/d=!{partitionKeyFromQuery:d}/","ErrorOutputPrefix":"e/!{firehose:error-output-type}/","DynamicPartitioningConfiguration":{"Enabled":true},"ProcessingConfiguration":{"Enabled":true,"Processors":[{"Type":"MetadataExtraction","Parameters":[{"ParameterName":"MetadataExtractionQuery","ParameterValue":"{c: .a.b, d: .ts|strftime(\"%Y\")}"}]}]}}}]}`,
			[]string{"c: a.b", "d: nil", `the partition key d is the JQ "` + `.ts|strftime(\"%Y\")`, "buffer: {size: 64MiB, interval: 300s}"}},
		{"undefined key", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","Prefix":"c=!{partitionKeyFromQuery:c}/"}}]}`,
			[]string{"c: nil", "which no MetadataExtractionQuery defines", "dynamic partitioning is not enabled"}},
		{"bad timestamp", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","Prefix":"x/!{timestamp:yyyy-ww}/","CompressionFormat":"ZIP"}}]}`,
			[]string{"prefix: x/!{timestamp:yyyy/MM/dd/HH}/", "sluice's timestamps take", "compression: gzip", "sluice has no ZIP"}},
		{"orc", `{"DeliveryStreamName":"a","Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","DataFormatConversionConfiguration":{"Enabled":true,"SchemaConfiguration":{"DatabaseName":"db","TableName":"t"},"OutputFormatConfiguration":{"Serializer":{"OrcSerDe":{}}}}}}]}`,
			[]string{"format: parquet", "sluice writes no ORC", "the Glue table db.t", "--glue-table"}},
		{"unknown keys", `{"DeliveryStreamName":"a","FutureSetting":{"x":1},"Destinations":[{"ExtendedS3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","NewThing":true}}]}`,
			[]string{`not converted: the delivery stream's FutureSetting ({"x":1})`, "not converted: NewThing (true)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Firehose([]byte(tc.in), FirehoseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			validate(t, tc.name, res)
			for _, w := range tc.want {
				if !strings.Contains(string(res.YAML), w) {
					t.Errorf("no %q in\n%s", w, res.YAML)
				}
			}
		})
	}
}

// TestGlueErrors: a Glue table that cannot become a schema says why.
func TestGlueErrors(t *testing.T) {
	desc, err := os.ReadFile(filepath.Join("testdata", "firehose", "orders-parquet.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"Table":{}}`, "no Table.StorageDescriptor.Columns"},
		{`{"Table":{"StorageDescriptor":{"Columns":[{"Name":"a","Type":"uniontype<int,string>"}]}}}`, "sluice has no uniontype"},
		{`{"Table":{"StorageDescriptor":{"Columns":[{"Name":"a b","Type":"int"}]}}}`, "is not a field name"},
		{`not json`, "not valid JSON"},
	} {
		_, err := Firehose(desc, FirehoseOptions{GlueTable: []byte(tc.in)})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "the Glue table") {
			t.Errorf("%s: error %v, want the Glue table and %q", tc.in, err, tc.want)
		}
	}
}

// TestKDAErrors: SQL outside the supported forms is an error at its line
// and column.
func TestKDAErrors(t *testing.T) {
	const dest = `CREATE OR REPLACE STREAM "D" (A INTEGER);` + "\n"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "no CREATE PUMP"},
		{"comment only", "-- nothing\n/* here */", "no CREATE PUMP"},
		{"other statement", "SELECT 1;", "line 1 column 1: expected CREATE OR REPLACE STREAM or CREATE OR REPLACE PUMP"},
		{"drop", "DROP STREAM x;", "line 1 column 1"},
		{"unterminated string", dest + `CREATE PUMP P AS INSERT INTO "D" SELECT STREAM A FROM S WHERE B = 'x;`, "line 2 column 67: a string that never ends"},
		{"unterminated name", `CREATE STREAM "D (A INT);`, "a quoted name that never ends"},
		{"unterminated comment", dest + "/* ...", "line 2 column 1: a /* comment that never ends"},
		{"bad char", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S WHERE B = `x`;", "unexpected character '`'"},
		{"no stream keyword", dest + "CREATE PUMP P AS INSERT INTO D SELECT A FROM S;", "expected STREAM after SELECT"},
		{"into unknown", "CREATE PUMP P AS INSERT INTO X SELECT STREAM A FROM S;", "inserts into X, which no CREATE OR REPLACE STREAM makes"},
		{"join", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S JOIN R ON S.A = R.A;", "JOIN is not converted"},
		{"unknown function", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S WHERE REGEX_REPLACE(A) = 1;", "the function REGEX_REPLACE is not converted"},
		{"aggregate without window", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM COUNT(*) FROM S;", "an aggregate without a window"},
		{"group by without step", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM A, COUNT(*) FROM S GROUP BY A;", "a streaming aggregate needs a window"},
		{"bad interval", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM COUNT(*) FROM S GROUP BY STEP(S.ROWTIME BY INTERVAL 'ten' MINUTE);", "the interval 'ten' is not a whole number"},
		{"bad unit", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM COUNT(*) FROM S GROUP BY STEP(S.ROWTIME BY INTERVAL '1' FORTNIGHT);", "expected SECOND, MINUTE, HOUR or DAY"},
		{"rows window", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM AVG(A) OVER (ROWS 10 PRECEDING) FROM S;", "ROWS windows"},
		{"unknown window", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM AVG(A) OVER W2 FROM S WINDOW W1 AS (RANGE INTERVAL '1' MINUTE PRECEDING);", "the query's WINDOW clause has no W2"},
		{"table function", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM * FROM TABLE(HOTSPOTS(CURSOR(SELECT STREAM * FROM S), 100, 0.01, 2));", "the table function HOTSPOTS is not converted"},
		{"forest without columns", dest + `CREATE STREAM "E" (S VARCHAR(4)); CREATE PUMP P AS INSERT INTO E SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM * FROM SRC)));`, "name them"},
		{"two inputs", dest + `CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S1; CREATE STREAM E (A INT); CREATE PUMP Q AS INSERT INTO E SELECT STREAM A FROM S2;`, "an application has one input stream"},
		{"deep nesting", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S WHERE " + strings.Repeat("(", 5000) + "A" + strings.Repeat(")", 5000) + ";", "nested more than"},
		{"deep not", dest + "CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S WHERE " + strings.Repeat("NOT ", 5000) + "A;", "nested more than"},
		{"bad field", dest + `CREATE PUMP P AS INSERT INTO D SELECT STREAM "a b" FROM S;`, `the column "a b" cannot be a field`},
		{"not utf8", "CREATE \xff", "not UTF-8"},
		{"oversized", strings.Repeat(" ", MaxInputSize+1), "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := KDA([]byte(tc.in), KDAOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestKDASmallForms: forms beside those of testdata, each with what it
// becomes.
func TestKDASmallForms(t *testing.T) {
	const dest = `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (SYM VARCHAR(4), N INTEGER, WIN TIMESTAMP);` + "\n"
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"floor rowtime and event time", dest + `CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
			SELECT STREAM TICKER, COUNT(*), FLOOR(S.EVENT_TS TO HOUR) FROM "SOURCE_SQL_STREAM_001" AS S
			WHERE TICKER LIKE 'A_%' AND PRICE BETWEEN 1 AND 10 AND NOTE IS NOT NULL
			GROUP BY TICKER, STEP(S.EVENT_TS BY INTERVAL '1' HOUR);`,
			[]string{"event_time: EVENT_TS", "tumbling: 1h", `(TICKER matches "^A(?s:.)(?s:.*)$")`, "(PRICE >= 1 and PRICE <= 10)", "(NOTE != nil)", "SYM: TICKER", "TICKER: null", "WIN: window_start", "N: count()"}},
		{"floor rowtime", `CREATE STREAM O (T VARCHAR(4), MINUTE_START TIMESTAMP, C BIGINT);
			CREATE PUMP P AS INSERT INTO O SELECT STREAM T, FLOOR(S.ROWTIME TO MINUTE), COUNT(*) FROM SOURCE_SQL_STREAM_001 AS S GROUP BY FLOOR(S.ROWTIME TO MINUTE), T;`,
			[]string{"tumbling: 1m", "group_by: [T]", "MINUTE_START: window_start", "C: count()"}},
		{"plain projection", `CREATE STREAM OUT_S (T VARCHAR(4), P2 DOUBLE, U VARCHAR(8));
			CREATE PUMP P AS INSERT INTO OUT_S SELECT STREAM "ticker", PRICE * 2, UPPER(SECTOR) || '!' FROM SOURCE_SQL_STREAM_001 WHERE CAST(PRICE AS INTEGER) <> 0;`,
			[]string{"filter: (int(PRICE) != 0)", "T: ticker", "P2: (PRICE * 2)", `U: (string(upper(SECTOR)) + string("!"))`, "KDA's rows of OUT_S hold only the selected columns"}},
		{"inline over", dest + `CREATE PUMP P AS INSERT INTO "DESTINATION_SQL_STREAM" (SYM, N, WIN) SELECT STREAM T, COUNT(*) OVER (PARTITION BY T RANGE INTERVAL '5' HOUR PRECEDING), ROWTIME FROM SOURCE_SQL_STREAM_001;`,
			[]string{"sliding: {size: 5h, every: 2s}", "WIN: window_end", "SYM: T"}},
		{"pumps in any order", `CREATE STREAM A_S (X INT); CREATE STREAM B_S (X INT);
			CREATE PUMP P2 AS INSERT INTO B_S SELECT STREAM * FROM A_S WHERE X > 1;
			CREATE PUMP P1 AS INSERT INTO A_S SELECT STREAM * FROM SOURCE_SQL_STREAM_001 WHERE X < 9;`,
			[]string{"filter: (X < 9)", "filter: (X > 1)", "from: b_s_where"}},
		{"explanation", `CREATE STREAM O (PRICE REAL, CHANGE DOUBLE, ANOMALY_SCORE DOUBLE, ANOMALY_EXPLANATION VARCHAR(512));
			CREATE PUMP P AS INSERT INTO O SELECT STREAM * FROM TABLE(RANDOM_CUT_FOREST_WITH_EXPLANATION(CURSOR(SELECT STREAM PRICE, CHANGE FROM SOURCE_SQL_STREAM_001 WHERE PRICE > 0), 50, 128, -1, 2, true));`,
			[]string{"fields: [PRICE, CHANGE]", "number_of_trees: 50", "shingle_size: 2", "explain: true", "ANOMALY_EXPLANATION: anomaly_explanation", "filter: (PRICE > 0)", "withDirectionality"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := KDA([]byte(tc.in), KDAOptions{Stream: "s"})
			if err != nil {
				t.Fatal(err)
			}
			validate(t, tc.name, res)
			for _, w := range tc.want {
				if !strings.Contains(string(res.YAML), w) {
					t.Errorf("no %q in\n%s", w, res.YAML)
				}
			}
		})
	}
}
