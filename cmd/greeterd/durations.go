package main

import (
	"flag"
	"fmt"
	"time"
)

// Floors of the periodic work that duration flags pace, so that no value
// makes a loop spin.
const (
	// minHealthInterval is the least --health-interval: each check writes
	// to the data directory.
	minHealthInterval = 100 * time.Millisecond
	// minTLSReloadInterval is the least --tls-reload-interval: a handshake
	// after it stats the certificate, key and CA files.
	minTLSReloadInterval = 100 * time.Millisecond
	// minKeepaliveTime is the least --keepalive-time; grpc-go raises a
	// shorter one to it anyway.
	minKeepaliveTime = time.Second
)

// durationRule says which values of one duration flag mean something. The
// zero rule accepts positive values only.
type durationRule struct {
	// zero, when not empty, is what a zero value means (as the flag's usage
	// says); zero is then accepted.
	zero string
	// floor is the least positive value accepted.
	floor time.Duration
}

// durationRules are the exceptions to "every duration flag must be
// positive". checkDurations applies them to every duration flag of a flag
// set, so a new duration flag is checked without being listed here.
var durationRules = map[string]durationRule{
	"max-connection-age":       {zero: "never"},
	"max-connection-age-grace": {zero: "forever"},
	"jwt-leeway":               {zero: "no tolerance"},
	"drain-delay":              {zero: "no delay"},
	"health-interval":          {floor: minHealthInterval},
	"tls-reload-interval":      {floor: minTLSReloadInterval},
	"keepalive-time":           {floor: minKeepaliveTime},
}

// checkDurations returns a usage error naming the first duration flag of fs
// (in lexical order) whose value, from the command line, the environment or
// the config file, is negative, zero where zero means nothing, or below the
// flag's floor.
func checkDurations(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || err != nil {
			return
		}
		d, ok := g.Get().(time.Duration)
		if !ok {
			return
		}
		rule := durationRules[f.Name]
		switch {
		case d < 0 && rule.zero != "":
			err = usageError{fmt.Errorf("--%s must not be negative (0 means %s), got %v", f.Name, rule.zero, d)}
		case d == 0 && rule.zero != "":
		case d <= 0:
			err = usageError{fmt.Errorf("--%s must be positive, got %v", f.Name, d)}
		case d < rule.floor:
			err = usageError{fmt.Errorf("--%s must be at least %v, got %v", f.Name, rule.floor, d)}
		}
	})
	return err
}
