package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipelines"
)

// TestWalkthrough translates the walkthrough's agent.json, verbatim.
func TestWalkthrough(t *testing.T) {
	data, err := os.ReadFile("../../examples/agent/walkthrough.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	files := cfg.Pipelines(Options{Listen: "127.0.0.1:9000"})
	if len(files) != 1 || files[0].Name != "agent-sample" {
		t.Fatalf("files %+v", files)
	}
	y := string(files[0].YAML)
	for _, want := range []string{`paths: ["/app/logs/*.log"]`, "start: end", "newline: keep", `stream: "sample"`,
		`endpoint: "https://kinesis.ap-northeast-1.amazonaws.com"`, "region: ap-northeast-1", "partition_key: random",
		"format: raw", "interval: 1m0s", "records: 500", "listen: 127.0.0.1:9000", `truncate_terminator: "\n"`} {
		if !strings.Contains(y, want) {
			t.Errorf("the pipeline lacks %q:\n%s", want, y)
		}
	}
}

// TestExamplesValidate: every example translates into valid pipelines.
func TestExamplesValidate(t *testing.T) {
	for _, p := range []string{"../../examples/agent/walkthrough.json", "../../examples/agent/rfc5424.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, f := range cfg.Pipelines(Options{Dir: t.TempDir()}) {
			if _, err := pipelines.Parse(f.Name+".yaml", t.TempDir(), f.YAML, nil); err != nil {
				t.Errorf("%s: the pipeline %s is invalid: %v\n%s", p, f.Name, err, f.YAML)
			}
		}
	}
}

// TestErrors: each option sluice cannot take is an error naming it.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[]`, "is a JSON object, not a list"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s"}], "x"`, "not valid JSON"},
		{`{"flows": []}`, "flows: empty"},
		{`{}`, "flows: missing"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "kinesisStream": "t"}]}`, `the key "kinesisStream" is given twice`},
		{`{"flows": [{"filePattern": "/a"}]}`, "flows[0]: a flow needs a destination"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "deliveryStream": "d"}], "firehose.endpoint": "http://x"}`, "flows[0].deliveryStream: a flow has one destination"},
		{`{"flows": [{"filePattern": "/a", "deliveryStream": "d"}]}`, "set firehose.endpoint to its http:// or https:// URL (it is not set)"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "partitionKeyOption": "HASH"}]}`, `flows[0].partitionKeyOption: want one of RANDOM, DETERMINISTIC, not "HASH"`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "maxBufferAgeMillis": 10}]}`, "flows[0].maxBufferAgeMillis: 10 is out of range: from 1000 to 900000"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "maxBufferSizeRecords": "x"}]}`, `flows[0].maxBufferSizeRecords: want a whole number, not "x"`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "multiLineStartPattern": "(?<=a)"}]}`, "flows[0].multiLineStartPattern"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "fileFooterPattern": "x"}]}`, "flows[0].fileFooterPattern: sluice does not honour this option"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "filepattern": "x"}]}`, "flows[0].filepattern: unknown option; did you mean filePattern?"},
		{`{"maxSendingThreads": 4, "flows": [{"filePattern": "/a", "kinesisStream": "s"}]}`, "maxSendingThreads: sluice does not honour this option"},
		{`{"cloudwatch.endpoint": "monitoring.us-east-1.amazonaws.com", "flows": [{"filePattern": "/a", "kinesisStream": "s"}]}`, "cloudwatch.endpoint: sluice sends nothing to cloudwatch"},
		{`{"cloudwatch.emitMetrics": "yes", "flows": [{"filePattern": "/a", "kinesisStream": "s"}]}`, `cloudwatch.emitMetrics: want true or false, not "yes"`},
		{`{"kinesis.endpoint": "ftp://x", "flows": [{"filePattern": "/a", "kinesisStream": "s"}]}`, "kinesis.endpoint: \"ftp://x\" is not an http:// or https:// URL"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "ADDEC2METADATA"}]}]}`, "dataProcessingOptions[0].optionName: want one of SINGLELINE"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "CSVTOJSON", "delimeter": ","}]}]}`, "CSVTOJSON does not take delimeter; did you mean delimiter?"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "LOGTOJSON", "maxBufferAgeMillis": "2000"}]}]}`, "dataProcessingOptions[0].logFormat: missing"},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "SINGLELINE", "parseOptions": ["TRIM"]}]}]}`, `parseOptions[0]: must be NO_TRIM or ESCAPE_NEW_LINE, not "TRIM"`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "bad name"}]}`, `flows[0].kinesisStream: "bad name" is not a stream name`},
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), "nested more than 100 deep"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%.80s) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	if _, err := Parse(make([]byte, MaxFileSize+1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("an oversized file: %v", err)
	}
}

// FuzzParse: any input is a configuration or an error; a configuration
// translates into pipeline files that name a destination.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../examples/agent/walkthrough.json", "../../examples/agent/rfc5424.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"flows":[{"filePattern":"x","deliveryStream":"d"}],"firehose.endpoint":"http://h/${A}"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		files := cfg.Pipelines(Options{})
		if len(files) != len(cfg.Flows) {
			t.Fatalf("%d files for %d flows", len(files), len(cfg.Flows))
		}
		for _, file := range files {
			if !strings.HasPrefix(file.Name, "agent-") || !strings.Contains(string(file.YAML), "sinks:") {
				t.Fatalf("file %s:\n%s", file.Name, file.YAML)
			}
		}
	})
}
