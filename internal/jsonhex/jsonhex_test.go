package jsonhex

import "testing"

func TestHex4(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want rune
		ok   bool
	}{
		{"0041", 'A', true},
		{"00e9", 'é', true},
		{"00E9", 'é', true},
		{"D83dxyz", 0xD83D, true},
		{"ffff", 0xFFFF, true},
		{"004", 0, false},
		{"", 0, false},
		{"00g1", 0, false},
		{"-041", 0, false},
	} {
		got, ok := Hex4([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Hex4(%q) = %U, %v; want %U, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
