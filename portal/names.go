package portal

import (
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// statusName is the Italian word for a milestone's status.
func statusName(s string) string {
	switch s {
	case milestone.StatusAchieved:
		return "raggiunto"
	case milestone.StatusOnTrack:
		return "in linea"
	case milestone.StatusAtRisk:
		return "a rischio"
	case milestone.StatusLate:
		return "in ritardo"
	}
	return s
}

// statusClass is the Bootstrap Italia badge colour of a status; every one
// has AA contrast with white text.
func statusClass(s string) string {
	switch s {
	case milestone.StatusAchieved, milestone.StatusOnTrack:
		return "bg-success"
	case milestone.StatusAtRisk:
		return "bg-warning"
	case milestone.StatusLate:
		return "bg-danger"
	}
	return "bg-secondary"
}

// stateName is the Italian word for a lifecycle state.
func stateName(s lifecycle.State) string {
	switch s {
	case lifecycle.Planned:
		return "previsto"
	case lifecycle.Installed:
		return "installato"
	case lifecycle.Commissioned:
		return "collaudato"
	case lifecycle.Operational:
		return "in servizio"
	case lifecycle.Faulty:
		return "guasto"
	case lifecycle.Decommissioned:
		return "dismesso"
	}
	return string(s)
}

// lineName is the Italian name of a programme line.
func lineName(l milestone.Line) string {
	switch l {
	case milestone.LineProgramma:
		return "Programma"
	case milestone.LineSportelloUnico:
		return "Sportello unico"
	case milestone.LineSpaziPerItalia:
		return "Spazi per l'Italia (coworking)"
	}
	return string(l)
}
