package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
)

func TestHTTPOpNamesEveryPathByASmallFixedSet(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{http.MethodPut, "/kv/a", OpPut},
		{http.MethodGet, "/kv/a", OpGet},
		{http.MethodHead, "/kv/a", OpGet},
		{http.MethodDelete, "/kv/a", OpDelete},
		{http.MethodPost, "/kv/a", OpOther},
		{http.MethodPut, "/db/3/kv/a", OpPut},
		{http.MethodGet, "/db/3", OpOther},
		{http.MethodPost, "/cluster/join", OpCluster},
		{http.MethodPost, rpc.PathPrefix + "put", OpInternal},
		{http.MethodGet, "/metrics", OpOther},
		{http.MethodGet, "/no/such/" + strings.Repeat("x", 100), OpOther},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got := HTTPOp(r); got != c.want {
			t.Errorf("HTTPOp(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

// counted is the value of dynkv_requests_total{labels}, or -1 when no such
// series exists.
func counted(t *testing.T, m *Metrics, labels map[string]string) float64 {
	t.Helper()
	fams, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "dynkv_requests_total" {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			return s.GetCounter().GetValue()
		}
	}
	return -1
}

func TestMeasureCountsEveryRequestByOperationAndStatus(t *testing.T) {
	m := New()
	h := m.Measure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/kv/missing":
			w.WriteHeader(http.StatusNotFound)
		case transport.DefaultPath:
			// The transport hijacks and answers 101 itself: nothing is
			// written through the wrapper.
		default:
			// Nothing written: net/http sends 200.
		}
	}))
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/kv/missing", nil),
		httptest.NewRequest(http.MethodGet, "/kv/missing", nil),
		httptest.NewRequest(http.MethodPut, "/kv/a", nil),
		httptest.NewRequest(http.MethodGet, transport.DefaultPath, nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, c := range []struct {
		op, code string
		want     float64
	}{
		{OpGet, "404", 2},
		{OpPut, "200", 1},
		{OpInternal, "101", 1},
		{OpDelete, "200", -1},
	} {
		got := counted(t, m, map[string]string{"protocol": "http", "op": c.op, "code": c.code})
		if got != c.want {
			t.Errorf("requests{op=%s, code=%s} = %v, want %v", c.op, c.code, got, c.want)
		}
	}
}

func TestNewRegistersTheExtraCollectorsAndServesThemAll(t *testing.T) {
	extra := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dynkv_test_extra", Help: "A collector the node passes in."})
	extra.Set(7)
	m := New(extra)
	m.ObserveRequest("resp", "get", "ok", 0)
	m.Limits.RESPRefused.WithLabelValues(RefusedBuffer).Inc()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"dynkv_test_extra 7",
		`dynkv_requests_total{code="ok",op="get",protocol="resp"} 1`,
		`dynkv_resp_refused_commands_total{reason="buffer"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var fam *dto.MetricFamily
	fams, _ := m.Gather()
	for _, f := range fams {
		if f.GetName() == "dynkv_test_extra" {
			fam = f
		}
	}
	if fam == nil {
		t.Error("Gather lacks the extra collector")
	}
}
