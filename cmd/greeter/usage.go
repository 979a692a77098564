package main

import (
	"fmt"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// usageJSON is the --json form of a Usage: exact numbers, 0 for no quota.
func usageJSON(u *pb.Usage) map[string]any {
	return map[string]any{
		"bytes":         u.GetBytes(),
		"objects":       u.GetObjects(),
		"quota_bytes":   u.GetQuotaBytes(),
		"quota_objects": u.GetQuotaObjects(),
	}
}

// usageText is the text form of a Usage, one line for bytes and one for
// objects, each with its quota and the share of it used:
//
//	bytes:    3.0 MiB of 1.0 GiB (0.3%)
//	objects:  7 (no quota)
func usageText(u *pb.Usage) string {
	return fmt.Sprintf("bytes:    %s\nobjects:  %s",
		ofQuota(u.GetBytes(), u.GetQuotaBytes(), func(n int64) string { return human(float64(n)) }),
		ofQuota(u.GetObjects(), u.GetQuotaObjects(), func(n int64) string { return fmt.Sprint(n) }))
}

// ofQuota renders used against quota (0: none) with format.
func ofQuota(used, quota int64, format func(int64) string) string {
	if quota <= 0 {
		return format(used) + " (no quota)"
	}
	return fmt.Sprintf("%s of %s (%.1f%%)", format(used), format(quota), float64(used)*100/float64(quota))
}
