package worker

import (
	"os"
	"strings"
	"time"
)

// localZone is this PC's IANA time zone, which the farm reads the agent's
// schedule in: $TZ, else where /etc/localtime points, else /etc/timezone;
// empty (UTC) when none names one.
func localZone() string {
	ok := func(name string) bool {
		_, err := time.LoadLocation(name)
		return name != "" && name != "Local" && err == nil
	}
	if tz := strings.TrimPrefix(os.Getenv("TZ"), ":"); ok(tz) {
		return tz
	}
	if target, err := os.Readlink("/etc/localtime"); err == nil {
		if i := strings.Index(target, "zoneinfo/"); i >= 0 && ok(target[i+len("zoneinfo/"):]) {
			return target[i+len("zoneinfo/"):]
		}
	}
	if b, err := os.ReadFile("/etc/timezone"); err == nil && ok(strings.TrimSpace(string(b))) {
		return strings.TrimSpace(string(b))
	}
	return ""
}
