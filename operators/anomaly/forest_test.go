package anomaly

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// spikySeries is a seeded sine wave with noise, and spikes injected at
// random places: the values and which of them are spikes.
func spikySeries(n int, seed uint64) ([]float64, []bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	vals, spike := make([]float64, n), make([]bool, n)
	for i := range vals {
		vals[i] = 10*math.Sin(2*math.Pi*float64(i)/200) + rng.NormFloat64()
		// No spikes while the samples fill.
		if i > 512 && rng.Float64() < 0.01 {
			spike[i] = true
			sign := 1.0
			if rng.IntN(2) == 0 {
				sign = -1
			}
			vals[i] += sign * (8 + 4*rng.Float64())
		}
	}
	return vals, spike
}

// auc is the area under the ROC curve of scores against labels: the
// chance that a random positive scores above a random negative (ties
// count half).
func auc(scores []float64, pos []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	// Mann-Whitney U with mid-ranks for ties.
	var rankSum float64
	var np, nn int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if pos[idx[k]] {
				rankSum += mid
				np++
			} else {
				nn++
			}
		}
		i = j
	}
	return (rankSum - float64(np*(np+1))/2) / float64(np*nn)
}

func TestForestRanksSpikesHighest(t *testing.T) {
	for _, shingle := range []int{1, 4} {
		vals, spike := spikySeries(6000, 42)
		f := newForest(100, 256, 1, shingle, 100000, 1)
		scores := make([]float64, 0, len(vals))
		var labels []bool
		for i, v := range vals {
			s, ok := f.update([]float64{v}, false)
			if !ok || i <= 512 {
				continue
			}
			scores = append(scores, s)
			labels = append(labels, spike[i])
		}
		a := auc(scores, labels)
		t.Logf("shingle %d: AUC %.4f over %d points", shingle, a, len(scores))
	}
}

func BenchmarkForestUpdate(b *testing.B) {
	vals, _ := spikySeries(10000, 42)
	f := newForest(100, 256, 1, 1, 100000, 1)
	x := make([]float64, 1)
	b.ResetTimer()
	for i := range b.N {
		x[0] = vals[i%len(vals)]
		f.update(x, false)
	}
}
