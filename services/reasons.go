package services

import (
	"fmt"
	"time"
)

// Reason codes: why a service or one of its channels is not available
// now. They are stable (clients switch on them); Message gives each in
// Italian. The README's table lists them with their meaning.
const (
	// Opening hours (counter and coworking channels).
	ReasonOfficeClosed = "office_closed" // outside opening hours; expected_at is the next opening
	ReasonHoliday      = "holiday"       // national public holiday; expected_at is the next opening
	ReasonHoursUnknown = "hours_unknown" // the registry has no opening hours for the site

	// Totem (self-service certificates).
	ReasonNoTotem           = "no_totem"
	ReasonTotemNotInService = "totem_not_in_service" // planned, installed or in acceptance
	ReasonTotemOffline      = "totem_offline"        // disconnected, silent, or reporting online=0
	ReasonTotemFaulty       = "totem_faulty"         // reporting a fault, or faulty until an operator confirms the repair
	ReasonTotemNoPaper      = "totem_no_paper"       // paper_pct below MinPaperPct

	// ATM (cash).
	ReasonNoATM           = "no_atm"
	ReasonATMNotInService = "atm_not_in_service"
	ReasonATMOffline      = "atm_offline"
	ReasonATMOutOfService = "atm_out_of_service" // available=0 or a fault
	ReasonATMNoCash       = "atm_no_cash"        // cash_eur below MinCashEUR

	// Parcel locker.
	ReasonNoLocker           = "no_locker"
	ReasonLockerNotInService = "locker_not_in_service"
	ReasonLockerOffline      = "locker_offline"
	ReasonLockerFaulty       = "locker_faulty"
	ReasonLockerFull         = "locker_full" // free_count 0, for a drop-off

	// EV charger.
	ReasonNoCharger           = "no_charger"
	ReasonChargerNotInService = "charger_not_in_service"
	ReasonChargerOffline      = "charger_offline"
	ReasonChargerFaulty       = "charger_faulty" // connector_state 3 (faulted) or a fault
	ReasonChargerBusy         = "charger_busy"   // every working connector charging (1) or suspended (2)

	// Coworking.
	ReasonNoFreeDesk = "no_free_desk" // no operational, online desk reports occupied=0
	ReasonNoFreeRoom = "no_free_room"

	// The twin.
	ReasonTwinUnknown = "twin_unknown" // the device has not reported yet
	ReasonElsewhere   = "elsewhere"    // another instance of the platform holds the site's live state
)

// Thresholds on the devices' metrics.
const (
	// MinPaperPct: below 1% of a totem's 400-page roll (4 pages) a
	// certificate of up to three pages may not print whole; staff refill
	// at 15%, so a totem gets here only when nobody has.
	MinPaperPct = 1.0
	// MinCashEUR: below €500, twice a usual €250 withdrawal, an ATM may
	// decline the next citizen: its cassettes no longer hold the notes to
	// make common amounts (the simulator's ATMs decline what they cannot
	// make, and report available=0 only when empty).
	MinCashEUR = 500.0
)

// ReasonInfo describes a reason code.
type ReasonInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"` // Italian, without the expected return
}

// Reasons lists every reason code with its Italian message, in the order
// of the constants.
var Reasons = []ReasonInfo{
	{ReasonOfficeClosed, "La sede è chiusa"},
	{ReasonHoliday, "La sede è chiusa per festività"},
	{ReasonHoursUnknown, "Gli orari di apertura della sede non sono disponibili"},
	{ReasonNoTotem, "L'ufficio non ha un totem self-service"},
	{ReasonTotemNotInService, "Il totem self-service non è ancora in servizio"},
	{ReasonTotemOffline, "Il totem self-service non è raggiungibile"},
	{ReasonTotemFaulty, "Il totem self-service è guasto"},
	{ReasonTotemNoPaper, "Il totem self-service ha esaurito la carta"},
	{ReasonNoATM, "L'ufficio non ha un ATM"},
	{ReasonATMNotInService, "L'ATM non è ancora in servizio"},
	{ReasonATMOffline, "L'ATM non è raggiungibile"},
	{ReasonATMOutOfService, "L'ATM è fuori servizio"},
	{ReasonATMNoCash, "L'ATM ha esaurito il contante"},
	{ReasonNoLocker, "L'ufficio non ha un locker"},
	{ReasonLockerNotInService, "Il locker non è ancora in servizio"},
	{ReasonLockerOffline, "Il locker non è raggiungibile"},
	{ReasonLockerFaulty, "Il locker è guasto"},
	{ReasonLockerFull, "Il locker non ha scomparti liberi"},
	{ReasonNoCharger, "L'ufficio non ha colonnine di ricarica"},
	{ReasonChargerNotInService, "La colonnina di ricarica non è ancora in servizio"},
	{ReasonChargerOffline, "La colonnina di ricarica non è raggiungibile"},
	{ReasonChargerFaulty, "La colonnina di ricarica è guasta"},
	{ReasonChargerBusy, "Tutti i punti di ricarica sono occupati"},
	{ReasonNoFreeDesk, "Nessuna postazione libera ora"},
	{ReasonNoFreeRoom, "Nessuna sala riunioni libera ora"},
	{ReasonTwinUnknown, "Lo stato del dispositivo non è ancora noto"},
	{ReasonElsewhere, "Lo stato in tempo reale di questa sede è gestito da un'altra istanza della piattaforma"},
}

var reasonMessages = func() map[string]string {
	m := make(map[string]string, len(Reasons))
	for _, r := range Reasons {
		m[r.Code] = r.Message
	}
	return m
}()

// reasonRank orders the problems of one channel's assets: the lowest is
// the asset closest to serving, whose problem the channel reports (one
// charger busy and one faulty: "busy", wait a little).
var reasonRank = map[string]int{
	"":                        0,
	ReasonTotemNoPaper:        1,
	ReasonATMNoCash:           1,
	ReasonLockerFull:          1,
	ReasonChargerBusy:         1,
	ReasonNoFreeDesk:          1,
	ReasonNoFreeRoom:          1,
	ReasonTotemOffline:        2,
	ReasonATMOffline:          2,
	ReasonLockerOffline:       2,
	ReasonChargerOffline:      2,
	ReasonTotemFaulty:         3,
	ReasonATMOutOfService:     3,
	ReasonLockerFaulty:        3,
	ReasonChargerFaulty:       3,
	ReasonTwinUnknown:         4,
	ReasonTotemNotInService:   5,
	ReasonATMNotInService:     5,
	ReasonLockerNotInService:  5,
	ReasonChargerNotInService: 5,
	ReasonElsewhere:           6,
}

var (
	giorni = [7]string{"domenica", "lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato"}
	mesi   = [12]string{"gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
		"settembre", "ottobre", "novembre", "dicembre"}
)

// quando writes t in Rome time as Italians read it: "lunedì 16 marzo alle 08:20".
func quando(t time.Time) string {
	lt := t.In(rome())
	return fmt.Sprintf("%s %d %s alle %02d:%02d", giorni[lt.Weekday()], lt.Day(), mesi[lt.Month()-1], lt.Hour(), lt.Minute())
}

// reasonMessage is the Italian message of a channel's reason, with the holiday's
// name and the expected return where known.
func reasonMessage(reason, holiday string, back time.Time) string {
	msg := reasonMessages[reason]
	if holiday != "" {
		msg += " (" + holiday + ")"
	}
	if !back.IsZero() {
		msg += "; riapre " + quando(back)
	}
	return msg
}

// channelNames are how a message names a channel (Italian).
var channelNames = map[Channel]string{
	ChannelTotem:     "al totem",
	ChannelCounter:   "allo sportello",
	ChannelLocker:    "al locker",
	ChannelATM:       "all'ATM",
	ChannelCharger:   "alla colonnina",
	ChannelCoworking: "nello spazio di coworking",
}
