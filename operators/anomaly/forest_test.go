package anomaly

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// spikySeries is a seeded noisy sine wave of amplitude 10 with spikes
// of the given height (±, plus up to a third more) injected at random
// places after the first 512 values: the values, and which are spikes.
func spikySeries(n int, height float64, seed uint64) ([]float64, []bool) {
	rng := rand.New(rand.NewPCG(seed, 7))
	vals, spike := make([]float64, n), make([]bool, n)
	for i := range vals {
		vals[i] = 10*math.Sin(2*math.Pi*float64(i)/200) + rng.NormFloat64()
		if i > 512 && rng.Float64() < 0.01 {
			spike[i] = true
			sign := 1.0
			if rng.IntN(2) == 0 {
				sign = -1
			}
			vals[i] += sign * height * (1 + rng.Float64()/3)
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

// TestForestRanksSpikesHighest scores a series with spikes and asserts
// the area under the ROC curve of the scores as a detector of the spikes,
// once the samples are full (after 512 values). Spikes that leave the
// series' range stand out on their own; spikes of the series' own height,
// which only its shape gives away, need a shingle.
func TestForestRanksSpikesHighest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		height  float64
		shingle int
		floor   float64
	}{
		{"spikes out of range, no shingle", 25, 1, 0.99},
		{"spikes within range, shingle 4", 8, 4, 0.96},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, spike := spikySeries(3000, tc.height, 42)
			f := newForest(DefaultTrees, DefaultSampleSize, 1, tc.shingle, DefaultTimeDecay, 1)
			var scores []float64
			var labels []bool
			spikes := 0
			for i, v := range vals {
				s, ok := f.update([]float64{v}, false)
				if !ok || i <= 512 {
					continue
				}
				scores = append(scores, s)
				labels = append(labels, spike[i])
				if spike[i] {
					spikes++
				}
			}
			a := auc(scores, labels)
			t.Logf("AUC %.4f: %d spikes among %d points (floor %.2f)", a, spikes, len(scores), tc.floor)
			if a < tc.floor {
				t.Errorf("AUC %.4f, want at least %.2f", a, tc.floor)
			}
		})
	}
}
