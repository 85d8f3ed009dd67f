// demo: a small "order aggregation service" whose maps grow the way real services' do.
//
// It runs for about a second: an aggregator map keyed by customer grows from empty to 60k
// keys, a per-region index grows on four worker goroutines, and a presized map of the same
// size never grows (what `make(map[K]V, hint)` buys). `cargo xtask demo` traces it.
package main

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

type order struct {
	customer string
	region   int
	cents    int64
}

func main() {
	orders := make([]order, 60000)
	for i := range orders {
		orders[i] = order{customer: "customer-" + strconv.Itoa(i), region: i % 4, cents: int64(i % 997)}
	}

	// Grows 13 times on its way to 60k keys.
	totals := make(map[string]int64)
	for _, o := range orders {
		totals[o.customer] += o.cents
	}

	// Four workers, each with its own index: four goroutines in the trace.
	var wg sync.WaitGroup
	indexes := make([]map[int]int, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			idx := make(map[int]int)
			for i, o := range orders {
				if o.region == w {
					idx[i] = int(o.cents)
				}
			}
			indexes[w] = idx
		}(w)
	}
	wg.Wait()

	// Presized: no grows at all.
	presized := make(map[string]int64, len(orders))
	for _, o := range orders {
		presized[o.customer] = o.cents
	}

	time.Sleep(100 * time.Millisecond)
	fmt.Printf("demo: %d customers, %d/%d/%d/%d per region, %d presized\n",
		len(totals), len(indexes[0]), len(indexes[1]), len(indexes[2]), len(indexes[3]), len(presized))
}
