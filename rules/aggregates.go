package rules

import (
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/twin/state"
)

// fillAggregates copies the site twin's aggregates into the rule language.
func fillAggregates(e *dsl.SiteEnv, v state.SiteView) {
	e.Assets = v.Assets
	e.Chargers, e.ChargersFree = v.Chargers, v.ChargersFree
	e.Lockers, e.LockerFree = v.Lockers, v.LockerFree
	e.Totems, e.TotemsUp = v.Totems, v.TotemsUp
	e.ATMs, e.ATMsUp = v.ATMs, v.ATMsUp
	e.PVs, e.PVPowerKW, e.PVEnergyTodayKWh = v.PVs, v.PVPowerKW, v.PVEnergyTodayKWh
	e.TempC, e.HumidityPct, e.CO2ppm = v.TempC, v.HumidityPct, v.CO2ppm
	e.Desks, e.DesksOccupied = v.Desks, v.DesksOccupied
	e.Rooms, e.RoomsOccupied = v.Rooms, v.RoomsOccupied
}
