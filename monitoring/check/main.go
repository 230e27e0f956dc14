// dashboard-check: decode a Grafana dashboard JSON strictly with Grafana's foundation SDK (unknown
// fields, wrong types and missing required fields fail), then parse every Prometheus target's
// expression with Prometheus' own PromQL parser. Prints one JSON line per target:
// {"panel": title, "expr": ..., "metrics": [metric names it selects]}; exits 1 on any error.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
)

type panel struct {
	title   string
	targets []prometheus.Dataquery
}

type target struct {
	Panel   string   `json:"panel"`
	Expr    string   `json:"expr"`
	Metrics []string `json:"metrics"`
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "dashboard-check: "+format+"\n", a...)
	os.Exit(1)
}

// failed: an error other than the SDK's empty cog.BuildErrors (a typed nil it returns when nothing failed).
func failed(err error) bool {
	if be, ok := err.(cog.BuildErrors); ok {
		return len(be) > 0
	}
	return err != nil
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: dashboard-check DASHBOARD.json")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(raw); failed(err) {
		fail("%s is not a valid dashboard: %v", os.Args[1], err)
	}
	// The SDK's PanelOrRowPanel returns a nested empty error list as a non-nil error and then drops
	// the panel it decoded, so each panel is decoded again on its own (strictly) to read it.
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		fail("%v", err)
	}
	var panels []panel
	for i, rp := range top.Panels {
		var kind struct {
			Type   string            `json:"type"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(rp, &kind); err != nil {
			fail("panels[%d]: %v", i, err)
		}
		raws := []json.RawMessage{rp}
		if kind.Type == "row" {
			var row dashboard.RowPanel
			if err := row.UnmarshalJSONStrict(rp); failed(err) {
				fail("panels[%d]: %v", i, err)
			}
			raws = kind.Panels
		}
		for _, r := range raws {
			var p dashboard.Panel
			if err := p.UnmarshalJSONStrict(r); failed(err) {
				fail("panels[%d]: %v", i, err)
			}
			// Targets too: the SDK drops a strictly decoded target for the same empty error list.
			var ts struct {
				Targets []json.RawMessage `json:"targets"`
			}
			if err := json.Unmarshal(r, &ts); err != nil {
				fail("panels[%d]: %v", i, err)
			}
			one := panel{}
			if p.Title != nil {
				one.title = *p.Title
			}
			for j, rt := range ts.Targets {
				var q prometheus.Dataquery
				if err := q.UnmarshalJSONStrict(rt); failed(err) {
					fail("panels[%d].targets[%d]: %v", i, j, err)
				}
				if q.Datasource == nil || q.Datasource.Type == nil || *q.Datasource.Type != "prometheus" {
					fail("panels[%d].targets[%d]: not a Prometheus query", i, j)
				}
				one.targets = append(one.targets, q)
			}
			panels = append(panels, one)
		}
	}
	if len(panels) == 0 {
		fail("no panels")
	}
	p := parser.NewParser(parser.Options{})
	out := json.NewEncoder(os.Stdout)
	for _, pn := range panels {
		title := pn.title
		if len(pn.targets) == 0 {
			fail("panel %q has no targets", title)
		}
		for _, q := range pn.targets {
			expr, err := p.ParseExpr(q.Expr)
			if err != nil {
				fail("panel %q: %q does not parse: %v", title, q.Expr, err)
			}
			names := map[string]bool{}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					names[vs.Name] = true
				}
				return nil
			})
			list := []string{}
			for n := range names {
				list = append(list, n)
			}
			sort.Strings(list)
			if err := out.Encode(target{title, q.Expr, list}); err != nil {
				fail("%v", err)
			}
		}
	}
}
