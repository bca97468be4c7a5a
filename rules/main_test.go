package rules

import (
	"testing"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }
