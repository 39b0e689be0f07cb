package membership

import (
	"fmt"
	"testing"
	"time"

	"github.com/dynkv/dynkv/internal/testutil"
	"go.uber.org/zap"
)

// BenchmarkFailureDetection reports how long the survivors of a 3-node
// cluster take to see a stopped node suspect and dead, with memberlist's LAN
// defaults and with the loopback settings the tests use. Run with
// -benchtime=1x (each iteration takes seconds with LAN defaults).
func BenchmarkFailureDetection(b *testing.B) {
	profiles := map[string]func(*Config){
		"lan-defaults": func(c *Config) {},
		"loopback-fast": func(c *Config) {
			c.ProbeInterval, c.ProbeTimeout, c.GossipInterval, c.SuspicionMult = 100*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond, 2
		},
	}
	for _, name := range []string{"lan-defaults", "loopback-fast"} {
		b.Run(name, func(b *testing.B) {
			var suspect, dead time.Duration
			for i := 0; i < b.N; i++ {
				s, d := detectOnce(b, profiles[name])
				suspect += s
				dead += d
			}
			b.ReportMetric(float64(suspect.Milliseconds())/float64(b.N), "ms-to-suspect")
			b.ReportMetric(float64(dead.Milliseconds())/float64(b.N), "ms-to-dead")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func detectOnce(b *testing.B, tune func(*Config)) (toSuspect, toDead time.Duration) {
	var nodes []*Membership
	defer func() {
		for _, m := range nodes {
			_ = m.Shutdown()
		}
	}()
	for i := 1; i <= 3; i++ {
		cfg := Config{NodeID: fmt.Sprintf("n%d", i), BindAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:1", Logger: zap.NewNop()}
		tune(&cfg)
		if i > 1 {
			cfg.Join = []string{gossipAddr(nodes[0])}
		}
		m, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, m)
	}
	// Bounds on a detector that never decides, not timing assertions.
	const within = time.Minute
	testutil.Eventually(b, within, 10*time.Millisecond, "n3 alive on n1 and n2", func() bool {
		return nodes[0].Liveness("n3") == Alive && nodes[1].Liveness("n3") == Alive
	})
	stopped := time.Now()
	_ = nodes[2].Shutdown()
	testutil.Eventually(b, within, 5*time.Millisecond, "n1 to suspect n3", func() bool { return nodes[0].Liveness("n3") != Alive })
	toSuspect = time.Since(stopped)
	testutil.Eventually(b, within, 5*time.Millisecond, "n1 to declare n3 dead", func() bool { return nodes[0].Liveness("n3") == Dead })
	return toSuspect, time.Since(stopped)
}
