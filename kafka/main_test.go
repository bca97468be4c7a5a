package kafka

import (
	"testing"

	"github.com/polis-platform/polis/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
