package convert

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzKDA: no SQL makes the converter panic or hang, and what it converts
// validates.
func FuzzKDA(f *testing.F) {
	for _, name := range kdaCases {
		data, err := os.ReadFile(filepath.Join("testdata", "kda", name+".sql"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`CREATE STREAM D (A INT); CREATE PUMP P AS INSERT INTO D SELECT STREAM A FROM S WHERE NOT (A IS NULL OR A LIKE 'x%');`))
	f.Fuzz(func(t *testing.T, sql []byte) {
		res, err := KDA(sql, KDAOptions{})
		if err != nil {
			return
		}
		validate(t, "fuzz.yaml", res)
	})
}

// FuzzFirehose: no description makes the converter panic, and what it
// converts validates.
func FuzzFirehose(f *testing.F) {
	for _, tc := range firehoseCases {
		data, err := os.ReadFile(filepath.Join("testdata", "firehose", tc.file+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"DeliveryStreamName":"a","Destinations":[{"S3DestinationDescription":{"BucketARN":"arn:aws:s3:::bkt","Prefix":"p/!{partitionKeyFromQuery:x}"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Firehose(data, FirehoseOptions{})
		if err != nil {
			return
		}
		validate(t, "fuzz.yaml", res)
	})
}
