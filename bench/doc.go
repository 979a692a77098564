// Package bench measures greeter's transfer paths against baselines in the
// same run, over real TLS 1.3 on loopback, so every performance claim in
// docs/performance.md is a ratio a reader can reproduce with
//
//	go test -run '^$' -bench . -benchtime 8x ./bench
package bench
