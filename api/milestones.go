package api

import (
	"net/http"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
)

// MilestoneSource computes the programme's milestones from the twin.
type MilestoneSource interface {
	Milestones(now time.Time) []milestone.Progress
}

type milestoneList struct {
	At    time.Time            `json:"at"`
	Items []milestone.Progress `json:"items"`
}

// listMilestones is public: the milestones are the programme's
// accountability to citizens.
func (a *v1) listMilestones(w http.ResponseWriter, _ *http.Request) {
	now := a.o.Now()
	out := milestoneList{At: now.UTC(), Items: a.o.Milestones.Milestones(now)}
	if out.Items == nil {
		out.Items = []milestone.Progress{}
	}
	writeJSON(w, http.StatusOK, out)
}
