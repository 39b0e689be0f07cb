package node

import (
	"bytes"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics the way Prometheus does and parses the text.
func (tn *testNode) scrape(header map[string]string) map[string]*dto.MetricFamily {
	tn.t.Helper()
	r := tn.do(http.MethodGet, "/metrics", nil, header)
	if r.status != http.StatusOK {
		tn.t.Fatalf("GET /metrics = %d %q, want 200", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		tn.t.Fatalf("GET /metrics: not the Prometheus text format: %v\n%s", err, r.body)
	}
	return fams
}

// sample finds the series of family name whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing from /metrics", name)
	}
	for _, m := range f.GetMetric() {
		match := 0
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(want) {
			return m
		}
	}
	t.Fatalf("metric %s has no series with labels %v; it has %v", name, want, f.GetMetric())
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return -1
}

func TestMetricsCountRequestsSiblingsAndFsyncsAfterTraffic(t *testing.T) {
	tn := startNode(t, nil, nil)
	for range 3 {
		tn.mustPut("/kv/a", "1", "")
	}
	tn.mustGet("/kv/a", "1")
	if r := tn.get("/kv/absent", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET /kv/absent = %d, want 404", r.status)
	}
	// Two writes from the same stale context leave two siblings.
	ctx := tn.mustPut("/kv/s", "x", "")
	tn.mustPut("/kv/s", "y", ctx)
	tn.mustPut("/kv/s", "z", ctx)
	if r := tn.get("/kv/s", nil); r.status != http.StatusMultipleChoices {
		t.Fatalf("GET /kv/s after concurrent writes = %d %q, want 300", r.status, r.body)
	}
	if r := tn.do(http.MethodDelete, "/kv/a", nil, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE /kv/a = %d, want 204", r.status)
	}

	fams := tn.scrape(nil)
	for _, c := range []struct {
		op, code string
		want     float64
	}{
		{"put", "204", 6},
		{"get", "200", 1},
		{"get", "404", 1},
		{"get", "300", 1},
		{"delete", "204", 1},
	} {
		labels := map[string]string{"protocol": "http", "op": c.op, "code": c.code}
		if got := value(sample(t, fams, "dynkv_requests_total", labels)); got != c.want {
			t.Errorf("dynkv_requests_total%v = %v, want %v", labels, got, c.want)
		}
		h := sample(t, fams, "dynkv_request_duration_seconds", labels).GetHistogram()
		if float64(h.GetSampleCount()) != c.want {
			t.Errorf("dynkv_request_duration_seconds%v count = %d, want %v", labels, h.GetSampleCount(), c.want)
		}
	}

	// The 404 found nothing, so two reads were observed: one sibling, then two.
	sib := sample(t, fams, "dynkv_read_siblings", nil).GetHistogram()
	if sib.GetSampleCount() != 2 || sib.GetSampleSum() != 3 {
		t.Errorf("dynkv_read_siblings count %d sum %v, want 2 reads with 1+2 siblings", sib.GetSampleCount(), sib.GetSampleSum())
	}

	// Under --fsync always every acknowledged write was fsynced: the
	// batch sizes add up to the WAL's appends.
	appends := value(sample(t, fams, "dynkv_wal_appends_total", nil))
	if appends < 7 {
		t.Errorf("dynkv_wal_appends_total = %v, want at least the 7 writes", appends)
	}
	batch := sample(t, fams, "dynkv_wal_group_commit_records", nil).GetHistogram()
	if batch.GetSampleSum() != appends {
		t.Errorf("dynkv_wal_group_commit_records sum = %v, want dynkv_wal_appends_total %v", batch.GetSampleSum(), appends)
	}
	syncs := value(sample(t, fams, "dynkv_wal_syncs_total", nil))
	if fs := sample(t, fams, "dynkv_wal_fsync_duration_seconds", nil).GetHistogram(); float64(fs.GetSampleCount()) != syncs {
		t.Errorf("dynkv_wal_fsync_duration_seconds count = %d, want dynkv_wal_syncs_total %v", fs.GetSampleCount(), syncs)
	}
	if w := value(sample(t, fams, "dynkv_coordinator_writes_total", nil)); w != 7 {
		t.Errorf("dynkv_coordinator_writes_total = %v, want 7", w)
	}
	if r := value(sample(t, fams, "dynkv_coordinator_reads_total", nil)); r != 3 {
		t.Errorf("dynkv_coordinator_reads_total = %v, want 3", r)
	}

	// A one-node cluster: this node owns the whole ring and is ready.
	for name, want := range map[string]float64{
		"dynkv_ring_share": 1, "dynkv_ready": 1, "dynkv_ring_members": 1, "dynkv_ring_transition_pending": 0,
		"dynkv_quorum_failures_total": 0, "dynkv_coordinator_hedges_total": 0,
	} {
		if got := value(sample(t, fams, name, nil)); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(sample(t, fams, "dynkv_members", map[string]string{"status": "valid"})); got != 1 {
		t.Errorf("dynkv_members{status=valid} = %v, want 1", got)
	}
	for _, name := range []string{"dynkv_store_keys_written_total", "dynkv_wal_segments", "dynkv_handoff_passes_total",
		"dynkv_hints_delivered_total", "dynkv_hints_stored_total", "dynkv_aae_rounds_total", "dynkv_aae_keys_exchanged_total", "go_goroutines"} {
		sample(t, fams, name, nil)
	}
}

func TestMetricsNeedABearerTokenWhenTokensAreSet(t *testing.T) {
	cfg := testConfig(t)
	cfg.AuthTokens = []string{"scrape-secret"}
	tn := startNode(t, &cfg, nil)
	if r := tn.get("/metrics", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a token = %d, want 401", r.status)
	}
	fams := tn.scrape(map[string]string{"Authorization": "Bearer scrape-secret"})
	// The refused scrape is itself counted, under "other".
	labels := map[string]string{"protocol": "http", "op": "other", "code": "401"}
	if got := value(sample(t, fams, "dynkv_requests_total", labels)); got != 1 {
		t.Errorf("dynkv_requests_total%v = %v, want 1", labels, got)
	}
}
