// Package convert turns the definitions of the AWS services sluice stands
// in for into sluice pipeline files: a Firehose delivery stream
// description (what `aws firehose describe-delivery-stream` prints) and
// the SQL of a Kinesis Data Analytics (SQL) application.
//
// A conversion never drops a setting silently: what has an equivalent is
// written as its pipeline key, and what has none — or only an approximate
// one — is written as a YAML comment beside the nearest key, saying what
// the original did and what to do instead. Result.Notes lists the same
// comments, for a summary. Input that is not what it claims to be
// (malformed JSON, SQL outside the supported forms) is an error that names
// the place and the form expected. docs/convert.md maps every setting.
package convert
