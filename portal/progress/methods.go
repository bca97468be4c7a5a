package progress

// Method explains how one kind of figure is computed, in Italian, for the
// portal's "come calcoliamo" page (/metodo#Anchor) and the open data.
type Method struct {
	Anchor string `json:"anchor"`
	Title  string `json:"title"`
	Text   string `json:"text"`
}

// Anchors of Methods. Target.Method is one of them.
const (
	MethodLevels      = "livelli"
	MethodCompleted   = "interventi-conclusi"
	MethodStarted     = "interventi-avviati"
	MethodOperational = "operativi"
	MethodWorkingNow  = "funzionanti-ora"
	MethodTargets     = "obiettivi-e-fonti"
	MethodDisagree    = "fonti-discordanti"
	MethodStatus      = "stato-obiettivo"
	MethodReached     = "date-di-raggiungimento"
	MethodTrend       = "andamento"
	MethodPace        = "ritmo-e-proiezione"
	MethodPublished   = "dati-pubblicati"
	MethodFunding     = "finanziamenti"
	MethodEnergy      = "energia"
	MethodCoworking   = "coworking-disponibilita"
	MethodSuppliers   = "fornitori"
	MethodFreshness   = "aggiornamento"
)

// Methods lists every method, in the order of the method page.
var Methods = []Method{
	{MethodLevels, "Apparati pianificati, installati, collaudati, operativi",
		"Ogni apparato (ATM, totem, locker, vetrina, punto di ricarica, impianto fotovoltaico, sensori, " +
			"postazione di coworking...) ha uno stato nel gemello digitale: pianificato, installato, collaudato, " +
			"operativo, guasto o dismesso. I conteggi sono cumulativi: un apparato è contato come installato se è " +
			"installato, collaudato, operativo o guasto; come collaudato se è collaudato, operativo o guasto (un apparato " +
			"guasto era stato installato e collaudato); come operativo solo se è in servizio ora. Gli apparati dismessi " +
			"non sono contati. Pianificato conta tutti gli apparati del piano non dismessi."},
	{MethodCompleted, "Intervento concluso",
		"Un ufficio postale (o uno spazio di coworking) ha l'intervento concluso quando tutti i suoi apparati sono " +
			"collaudati o oltre (collaudati, operativi o guasti). È la stessa regola con cui contiamo gli obiettivi sugli " +
			"uffici completati. La data di conclusione è quella in cui l'ultimo apparato è stato collaudato."},
	{MethodStarted, "Intervento avviato",
		"Un ufficio ha l'intervento avviato quando almeno uno dei suoi apparati è installato o oltre. Serve a " +
			"confrontare il gemello con le cifre pubblicate sugli interventi avviati."},
	{MethodOperational, "Ufficio operativo",
		"Un ufficio è operativo quando tutti i suoi apparati sono operativi ora, cioè in servizio per il pubblico " +
			"secondo il loro stato nel gemello digitale."},
	{MethodWorkingNow, "Funzionante ora",
		"Un apparato funziona ora quando è operativo e in questo momento è in linea e non segnala guasti: lo dice la " +
			"telemetria in tempo reale che ogni apparato invia al gemello digitale. Un apparato operativo ma silenzioso " +
			"da troppo tempo, scollegato o in errore non è contato."},
	{MethodTargets, "Obiettivi e fonti",
		"Gli obiettivi del programma sono quelli annunciati pubblicamente, ciascuno con la sua fonte (la riga della " +
			"tabella dei fatti pubblici, con indirizzo e data). Per ogni obiettivo contiamo nel gemello digitale ciò che " +
			"l'obiettivo misura (per esempio gli ATM installati o gli uffici con intervento concluso) e lo confrontiamo " +
			"con la cifra annunciata."},
	{MethodDisagree, "Quando le fonti non concordano",
		"Fonti diverse hanno annunciato cifre diverse per la stessa misura (per esempio 4.800 o 6.933 uffici, 3.000 o " +
			"7.000 ATM, 5.000 o 10.000 postazioni, una quota di Poste di 320 o 400 milioni di euro). Non scegliamo: " +
			"mostriamo ogni cifra con la sua fonte e segnaliamo che discordano. Sono discordanti due obiettivi finali " +
			"(con scadenza nell'anno di fine del programma) che misurano la stessa cosa con cifre diverse; gli obiettivi " +
			"intermedi, con scadenze precedenti, non sono discordanti. Alcune cifre sono riportate da un articolo di cui " +
			"non è registrato l'indirizzo: le mostriamo con questa avvertenza."},
	{MethodStatus, "Stato di un obiettivo",
		"Raggiunto: il conteggio attuale è pari o superiore all'obiettivo. In linea: non ancora scaduto e il " +
			"conteggio è almeno quello che un ritmo costante dall'inizio dei lavori (1° gennaio 2022) alla scadenza " +
			"richiederebbe oggi. A rischio: non ancora scaduto e sotto quel ritmo. In ritardo: scaduto e non raggiunto. " +
			"Le scadenze valgono fino alla fine del giorno, ora italiana."},
	{MethodReached, "Date di raggiungimento",
		"Ogni cambiamento di stato di un apparato è registrato con data e ora (storico del ciclo di vita). Da questo " +
			"storico ricostruiamo il conteggio giorno per giorno: \"raggiunto il\" è il momento dell'ultimo cambiamento " +
			"del conteggio attuale; \"obiettivo raggiunto il\" è il primo momento in cui il conteggio ha toccato " +
			"l'obiettivo. Gli apparati senza storico contano dalla data di installazione del registro."},
	{MethodTrend, "Andamento",
		"L'andamento è il conteggio cumulativo alla fine di ogni mese, dall'inizio dei lavori a oggi, ricostruito " +
			"dallo storico del ciclo di vita; l'ultimo punto è il conteggio di oggi."},
	{MethodPace, "Ritmo e data prevista",
		"Il ritmo è la crescita media del conteggio al giorno negli ultimi 180 giorni (o dall'inizio dello storico, " +
			"se più recente). La data prevista è quella in cui, a questo ritmo, il conteggio raggiungerebbe " +
			"l'obiettivo; non c'è data prevista se l'obiettivo è raggiunto o se il ritmo è nullo. Confrontandola con " +
			"la scadenza si vede se l'obiettivo è raggiungibile in tempo al ritmo attuale."},
	{MethodPublished, "Dati pubblicati e gemello digitale",
		"Le cifre di avanzamento pubblicate (comunicati, stampa, audizioni) sono mostrate alla loro data accanto al " +
			"conteggio che il gemello digitale dava quel giorno per la stessa misura, dove una misura corrispondente " +
			"esiste. Così si vede dove i dati in tempo reale e le dichiarazioni pubbliche concordano e dove no."},
	{MethodFunding, "Finanziamenti",
		"Gli importi sono quelli pubblicati (stanziamenti del Piano nazionale complementare, quote annue, quota di " +
			"Poste Italiane, investimento Spazi per l'Italia), ciascuno con la sua fonte. Se due fonti danno importi " +
			"diversi per la stessa voce li mostriamo entrambi."},
	{MethodEnergy, "Energia del mese",
		"L'energia prodotta dall'impianto fotovoltaico e quella erogata dai punti di ricarica nel mese in corso (ora " +
			"italiana) sono calcolate dai contatori che gli apparati inviano, aggregati per ora: sommiamo gli incrementi " +
			"tra una lettura e la successiva e, se un contatore si azzera (a mezzanotte, o per un riavvio), contiamo " +
			"la nuova lettura come incremento. Il dato si aggiorna ogni pochi minuti."},
	{MethodCoworking, "Disponibilità del coworking",
		"Postazioni e sale libere ora sono quelle i cui sensori di presenza, in linea, non segnalano occupazione."},
	{MethodSuppliers, "Fornitori",
		"I fornitori sono quelli registrati per ciascun apparato nel registro della flotta, con il codice " +
			"identificativo di gara (CIG) del contratto."},
	{MethodFreshness, "Aggiornamento dei dati",
		"Stati degli apparati e funzionamento sono letti in tempo reale e la pagina si aggiorna ogni pochi secondi. " +
			"Lo storico (date, andamenti, ritmi) è riletto dal database ogni minuto; l'energia ogni cinque minuti. " +
			"Ogni pagina indica quando sono stati letti."},
}

// MethodByAnchor returns the method with that anchor.
func MethodByAnchor(anchor string) (Method, bool) {
	for _, m := range Methods {
		if m.Anchor == anchor {
			return m, true
		}
	}
	return Method{}, false
}
