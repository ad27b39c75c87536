package kinesisapi

import "strconv"

// appendEpoch appends a Unix time in milliseconds as seconds with three
// decimals, the JSON protocol's timestamp form.
func appendEpoch(b []byte, ms int64) []byte {
	if ms < 0 {
		ms = 0
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	frac := ms % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}
