package metrics

import "testing"

func TestParseLevelDBStatsReadsEveryLevelRow(t *testing.T) {
	text := "Compactions\n" +
		" Level |   Tables   |    Size(MB)   |    Time(sec)  |    Read(MB)   |   Write(MB)\n" +
		"-------+------------+---------------+---------------+---------------+---------------\n" +
		"   0   |          2 |       1.00000 |       0.50000 |       0.00000 |       2.00000\n" +
		"   1   |          5 |      10.50000 |       1.25000 |       3.00000 |       4.00000\n"
	got := ParseLevelDBStats(text)
	want := []LevelStats{
		{Level: 0, Tables: 2, SizeBytes: 1 << 20, CompactSecs: 0.5, ReadBytes: 0, WriteBytes: 2 << 20},
		{Level: 1, Tables: 5, SizeBytes: 10.5 * (1 << 20), CompactSecs: 1.25, ReadBytes: 3 << 20, WriteBytes: 4 << 20},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d rows %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func FuzzParseLevelDBStats(f *testing.F) {
	f.Add("Compactions\n Level |   Tables   |    Size(MB)   |    Time(sec)  |    Read(MB)   |   Write(MB)\n" +
		"-------+------------+---------------+---------------+---------------+---------------\n" +
		"   0   |          1 |       0.00010 |       0.00000 |       0.00000 |       0.00000\n")
	f.Add("")
	f.Add(" 1 | -1 | NaN | +Inf | 1e308 | x\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, l := range ParseLevelDBStats(text) {
			if l.Level < 0 || l.Tables < 0 || l.SizeBytes < 0 || l.CompactSecs < 0 || l.ReadBytes < 0 || l.WriteBytes < 0 {
				t.Fatalf("negative figure %+v from %q", l, text)
			}
		}
	})
}
