package dsl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// vmOnly is p without its threshold: the VM's answer, the definition.
func vmOnly(p *Program) *Program {
	return &Program{Source: p.Source, Uses: p.Uses, prog: p.prog}
}

// thresholdValues are the readings the differential tests try: the
// special floats, both zeros, the constants themselves and their
// neighbours, and a float64 that is not an exact int.
var thresholdValues = []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1),
	3, -3, 2.5, -2.5, math.Nextafter(3, 4), math.Nextafter(3, 2), 1e300, -1e300,
	9007199254740992, 9007199254740993, 1 << 62, 1000, 1000.0000001}

var thresholdConsts = []string{"0", "3", "-3", "2.5", "-2.5", "+3", "1e300", "-1e300", "9007199254740993",
	"4611686018427387904", "-4611686018427387904", "0.1", "1000", "-0", "-0.0"}

var thresholdOperands = []string{"value", `last("a")`, `last("gone")`, `asset.metrics.a`,
	`asset.metrics["a"]`, `asset.metrics.gone`}

// TestThresholdMatchesVM compares the threshold fast path with the VM on
// every operand, operator, constant, side and reading above.
func TestThresholdMatchesVM(t *testing.T) {
	n := 0
	for _, operand := range thresholdOperands {
		for op := range cmpOps {
			for _, k := range thresholdConsts {
				for _, src := range []string{operand + " " + op + " " + k, k + " " + op + " " + operand} {
					p := mustCompile(t, src)
					if p.fast == nil {
						t.Fatalf("%s: not recognised as a threshold", src)
					}
					vm := vmOnly(p)
					for _, v := range thresholdValues {
						env := &Env{Value: v, Asset: AssetEnv{Metrics: map[string]float64{"a": v}}}
						want, err := vm.Eval(env)
						if err != nil {
							t.Fatalf("%s with %v: %v", src, v, err)
						}
						if got, _ := p.Eval(env); got != want {
							t.Fatalf("%s with %v: fast path %v, VM %v", src, v, got, want)
						}
						n++
					}
				}
			}
		}
	}
	t.Logf("%d comparisons", n)
}

// TestThresholdRandom is the differential test on random constants and
// readings, printed with every precision the parser accepts.
func TestThresholdRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := []string{"<", "<=", ">", ">=", "==", "!="}
	num := func() float64 {
		switch rng.IntN(4) {
		case 0:
			return float64(rng.IntN(21) - 10)
		case 1:
			return (rng.Float64() - 0.5) * 1e6
		case 2:
			return math.Ldexp(rng.Float64(), rng.IntN(200)-100)
		}
		return float64(rng.Int64N(1<<60) - 1<<59)
	}
	for range 3000 {
		k := num()
		lit := strconv.FormatFloat(k, 'g', -1, 64)
		if rng.IntN(2) == 0 && k == math.Trunc(k) && math.Abs(k) < 1<<62 {
			lit = strconv.FormatInt(int64(k), 10) // an int literal
		}
		src := fmt.Sprintf("%s %s %s", thresholdOperands[rng.IntN(len(thresholdOperands))], ops[rng.IntN(len(ops))], lit)
		p := mustCompile(t, src)
		if p.fast == nil {
			t.Fatalf("%s: not recognised as a threshold", src)
		}
		vm := vmOnly(p)
		for range 5 {
			v := num()
			if rng.IntN(3) == 0 {
				v = k // equality needs hits
			}
			env := &Env{Value: v, Asset: AssetEnv{Metrics: map[string]float64{"a": v}}}
			want, err := vm.Eval(env)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := p.Eval(env); got != want {
				t.Fatalf("%s with %v: fast path %v, VM %v", src, v, got, want)
			}
		}
	}
}

// TestThresholdShapes: only the shapes the fast path reads exactly are
// taken from the VM.
func TestThresholdShapes(t *testing.T) {
	for _, tc := range []struct {
		src  string
		fast bool
	}{
		{`value > 1000`, true},
		{`1000 < value`, true},
		{`last("free_count") == 0`, true},
		{`asset.metrics.temp_c >= -5.5`, true},
		{`value > 3 && value < 5`, false},
		{`value > value`, false},
		{`value > last("a")`, false},
		{`last(metric) > 3`, false},
		{`metric == "x"`, false},
		{`avg("a", "5m") > 3`, false},
		{`province_avg("a") > 3`, false},
		{`asset.metrics?.a > 3`, false},
		{`site.atms > 3`, false},
		{`value + 1 > 3`, false},
		{`!(value > 3)`, false},
		{`value > 3 == true`, false},
	} {
		p := mustCompile(t, tc.src)
		if got := p.fast != nil; got != tc.fast {
			t.Errorf("%s: fast path %v; want %v", tc.src, got, tc.fast)
		}
	}
}

// The summary is rendered by the VM: a threshold there is a value, not a
// condition.
func TestThresholdNotInSummary(t *testing.T) {
	tm, pe := compileTemplate("{{ value > 3 }}", where{Line: 1, Col: 1}, nil)
	if pe != nil {
		t.Fatal(pe.msg)
	}
	if tm.parts[0].fast != nil {
		t.Fatal("summary part compiled as a threshold")
	}
	s, err := tm.Render(&Env{Value: 4})
	if err != nil || s != "true" {
		t.Fatalf("got %q, %v", s, err)
	}
}

func BenchmarkThreshold(b *testing.B) {
	for _, src := range []string{`value > 1000`, `last("a") > 1000`} {
		p := mustCompile(b, src)
		env := &Env{Value: 1200, Asset: AssetEnv{Metrics: map[string]float64{"a": 1200}}}
		for name, prog := range map[string]*Program{"fast": p, "vm": vmOnly(p)} {
			b.Run(src+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if ok, err := prog.Eval(env); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
			})
		}
	}
}

// FuzzThreshold: for any reading and any constant, operator, operand and
// side, the fast path answers as the VM does.
func FuzzThreshold(f *testing.F) {
	f.Add(1000.5, 1000.0, uint8(2), uint8(0), false)
	f.Add(math.NaN(), 0.0, uint8(5), uint8(1), true)
	f.Add(math.Inf(-1), -3.0, uint8(0), uint8(2), false)
	ops := []string{"<", "<=", ">", ">=", "==", "!="}
	f.Fuzz(func(t *testing.T, v, k float64, op, operand uint8, swap bool) {
		if math.IsNaN(k) || math.IsInf(k, 0) {
			t.Skip("not a literal")
		}
		lit := strconv.FormatFloat(k, 'g', -1, 64)
		if k == math.Trunc(k) && math.Abs(k) < 1<<62 && op%2 == 0 {
			lit = strconv.FormatInt(int64(k), 10)
		}
		x, o := thresholdOperands[int(operand)%len(thresholdOperands)], ops[int(op)%len(ops)]
		src := x + " " + o + " " + lit
		if swap {
			src = lit + " " + o + " " + x
		}
		p := mustCompile(t, src)
		if p.fast == nil {
			t.Fatalf("%s: not recognised as a threshold", src)
		}
		env := &Env{Value: v, Asset: AssetEnv{Metrics: map[string]float64{"a": v}}}
		want, err := vmOnly(p).Eval(env)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := p.Eval(env); got != want {
			t.Fatalf("%s with %v: fast path %v, VM %v", src, v, got, want)
		}
	})
}
