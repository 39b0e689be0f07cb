package handoff

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dynkv/dynkv/membership"
)

func TestTransferDestinations(t *testing.T) {
	for _, c := range []struct {
		name       string
		self       string
		committed  []string
		target     []string
		wantToNode []string
	}{
		{"not a current replica sends nothing", "d", []string{"a", "b"}, []string{"d", "a"}, nil},
		{"unchanged list sends nothing", "a", []string{"a", "b"}, []string{"a", "b"}, nil},
		{"reordered list sends nothing", "a", []string{"a", "b"}, []string{"b", "a"}, nil},
		{"a gained replica gets the key", "a", []string{"a", "b"}, []string{"d", "a"}, []string{"d"}},
		{"the replica that drops out sends too", "b", []string{"a", "b"}, []string{"d", "a"}, []string{"d"}},
		{"several gained replicas", "a", []string{"a"}, []string{"a", "b", "c"}, []string{"b", "c"}},
		{"a leaving replica sends to its replacement", "c", []string{"a", "c"}, []string{"a", "b"}, []string{"b"}},
		{"empty committed list sends nothing", "a", nil, []string{"a"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := transferDestinations(c.self, c.committed, c.target)
			if !slices.Equal(got, c.wantToNode) {
				t.Fatalf("transferDestinations(%s, %v -> %v) = %v, want %v", c.self, c.committed, c.target, got, c.wantToNode)
			}
		})
	}
}

func TestStrayDestinations(t *testing.T) {
	for _, c := range []struct {
		name      string
		self      string
		committed []string
		want      []string
	}{
		{"an owner keeps its key", "a", []string{"b", "a"}, nil},
		{"a stray goes to every owner", "a", []string{"b", "c"}, []string{"b", "c"}},
		{"no ring known: keep everything", "a", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := strayDestinations(c.self, c.committed); !slices.Equal(got, c.want) {
				t.Fatalf("strayDestinations(%s, %v) = %v, want %v", c.self, c.committed, got, c.want)
			}
		})
	}
}

const planPartitions = 64

// checkTransferPlans verifies, for every partition, that each replica in the
// committed list sends to exactly the replicas the target list adds, and
// that every other node sends nothing: every new replica then hears from
// every current one.
func checkTransferPlans(t *testing.T, committed, target []string, n int) (gained map[string]int) {
	t.Helper()
	c := membership.NewRing(committed, planPartitions)
	tr := membership.NewRing(target, planPartitions)
	everyone := append(slices.Clone(committed), target...)
	slices.Sort(everyone)
	everyone = slices.Compact(everyone)
	plans := map[string]*handoffPlan{}
	for _, id := range everyone {
		plans[id] = newHandoffPlan(id, modeTransfer, n, c, tr)
	}
	gained = map[string]int{}
	for p := 0; p < planPartitions; p++ {
		cl, tl := c.PreferenceList(p, n), tr.PreferenceList(p, n)
		var want []string
		for _, id := range tl {
			if !slices.Contains(cl, id) {
				want = append(want, id)
				gained[id]++
			}
		}
		for _, id := range everyone {
			got := plans[id].destinations(p)
			switch {
			case slices.Contains(cl, id) && !slices.Equal(got, want):
				t.Errorf("partition %d (%v -> %v): replica %s sends to %v, want %v", p, cl, tl, id, got, want)
			case !slices.Contains(cl, id) && len(got) != 0:
				t.Errorf("partition %d (%v -> %v): %s is not a current replica but sends to %v", p, cl, tl, id, got)
			}
			if again := plans[id].destinations(p); !slices.Equal(again, got) {
				t.Errorf("partition %d: memoised answer %v differs from the first %v", p, again, got)
			}
		}
	}
	return gained
}

func TestJoinPlanSendsTheJoinerEveryPartitionItReplicates(t *testing.T) {
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			gained := checkTransferPlans(t, []string{"a", "b", "c"}, []string{"a", "b", "c", "d"}, n)
			tr := membership.NewRing([]string{"a", "b", "c", "d"}, planPartitions)
			want := 0
			for p := 0; p < planPartitions; p++ {
				if slices.Contains(tr.PreferenceList(p, n), "d") {
					want++
				}
			}
			if gained["d"] != want || want == 0 {
				t.Fatalf("d gains %d partitions, want the %d it replicates in the target ring", gained["d"], want)
			}
		})
	}
}

func TestLeaveAndRemovePlansRebuildEveryReplica(t *testing.T) {
	checkTransferPlans(t, []string{"a", "b", "c", "d"}, []string{"a", "b", "c"}, 3)
	checkTransferPlans(t, []string{"a", "b", "c", "d", "e"}, []string{"a", "c", "e"}, 2)
}

// On a cluster smaller than N, N is capped: growing from one node to two
// makes the second a replica of everything.
func TestGrowingFromOneNodeCopiesEverything(t *testing.T) {
	gained := checkTransferPlans(t, []string{"a"}, []string{"a", "b"}, 3)
	if gained["b"] != planPartitions {
		t.Fatalf("b gains %d partitions, want all %d", gained["b"], planPartitions)
	}
}

func TestSweepPlanSendsStraysToEveryOwner(t *testing.T) {
	c := membership.NewRing([]string{"a", "b", "c", "d"}, planPartitions)
	for _, self := range []string{"a", "x"} {
		plan := newHandoffPlan(self, modeSweep, 2, c, nil)
		strays := 0
		for p := 0; p < planPartitions; p++ {
			owners := c.PreferenceList(p, 2)
			got := plan.destinations(p)
			if slices.Contains(owners, self) {
				if got != nil {
					t.Errorf("%s owns partition %d but would sweep it to %v", self, p, got)
				}
				continue
			}
			strays++
			if !slices.Equal(got, owners) {
				t.Errorf("%s sweeps partition %d to %v, want its owners %v", self, p, got, owners)
			}
		}
		if self == "x" && strays != planPartitions {
			t.Errorf("a non-member sweeps %d partitions, want all %d", strays, planPartitions)
		}
		if self == "a" && (strays == 0 || strays == planPartitions) {
			t.Errorf("member a sweeps %d of %d partitions, want some but not all", strays, planPartitions)
		}
	}
}

func TestPlanPartitionMatchesPlacement(t *testing.T) {
	c := membership.NewRing([]string{"a", "b"}, planPartitions)
	plan := newHandoffPlan("a", modeSweep, 2, c, nil)
	place := membership.Placement{Committed: c}
	for i := 0; i < 100; i++ {
		key := []byte(fmt.Sprintf("key-%d", i))
		if got, want := plan.partition(i%3, key), place.Partition(i%3, key); got != want {
			t.Fatalf("plan puts db %d %s in partition %d, Placement in %d", i%3, key, got, want)
		}
	}
}
