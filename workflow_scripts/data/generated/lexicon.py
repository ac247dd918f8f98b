"""Word lists for the generated tasks (`task_generator` and its task modules): data only, no logic.

Every list is a tuple (never a set) so that iteration order, and with it every generated data set, is the same in
every process. Inflected forms are spelled out rather than derived, because English morphology is irregular and a
wrong form would silently turn an "acceptable" example into an unacceptable one.
"""

# ---------------------------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------------------------

FEMALE_NAMES = (
    "Anna", "Maria", "Sarah", "Emma", "Laura", "Julia", "Rachel", "Susan", "Karen", "Linda",
    "Alice", "Grace", "Helen", "Olivia", "Sophie", "Chloe", "Hannah", "Rebecca", "Nina", "Claire",
    "Diana", "Emily", "Fiona", "Irene", "Jessica", "Lucy", "Megan", "Naomi", "Paula", "Vera",
)
MALE_NAMES = (
    "John", "David", "Michael", "James", "Robert", "Peter", "Thomas", "Daniel", "Mark", "Paul",
    "George", "Henry", "Oliver", "Samuel", "Victor", "Adam", "Brian", "Carl", "Edward", "Frank",
    "Gary", "Ian", "Kevin", "Leo", "Martin", "Nathan", "Oscar", "Simon", "Steven", "Walter",
)
SURNAMES = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark",
    "Lewis", "Walker", "Young", "King", "Wright", "Hill", "Green", "Baker", "Nelson", "Carter",
    "Turner", "Parker", "Evans", "Collins", "Murphy", "Cooper", "Reed", "Bell", "Ward", "Hughes",
)

# (singular, plural) of roles a person can have; used in appositives ("Anna, a nurse from Boston, ...").
PROFESSIONS = (
    ("doctor", "doctors"), ("nurse", "nurses"), ("teacher", "teachers"), ("lawyer", "lawyers"),
    ("engineer", "engineers"), ("farmer", "farmers"), ("pilot", "pilots"), ("chef", "chefs"),
    ("journalist", "journalists"), ("banker", "bankers"), ("mechanic", "mechanics"), ("painter", "painters"),
    ("student", "students"), ("dentist", "dentists"), ("architect", "architects"), ("plumber", "plumbers"),
    ("baker", "bakers"), ("librarian", "librarians"), ("soldier", "soldiers"), ("writer", "writers"),
)

# Organisations that act like a person in news-style sentences (MRPC's domain).
ORGANISATIONS = (
    "the company", "the city council", "the museum", "the hospital", "the school", "the bank",
    "the university", "the club", "the library", "the airline", "the bakery", "the newspaper",
)
# Who reports a fact: "<source> said that ..." / "according to <source>, ...".
REPORT_SOURCES = (
    "the police", "officials", "the spokesman", "a spokeswoman", "witnesses", "the report",
    "the mayor", "local reporters", "the manager", "investigators",
)

# ---------------------------------------------------------------------------------------------------------------
# Places, times, numbers
# ---------------------------------------------------------------------------------------------------------------

CITIES = (
    "Boston", "Chicago", "Denver", "Seattle", "Dallas", "Atlanta", "Phoenix", "Miami", "Portland", "Detroit",
    "London", "Paris", "Berlin", "Madrid", "Rome", "Vienna", "Dublin", "Lisbon", "Prague", "Oslo",
    "Tokyo", "Sydney", "Toronto", "Montreal", "Cairo", "Lima", "Geneva", "Munich", "Milan", "Athens",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Index i holds the word for i + 2, so a "number change" can move by one without leaving the list.
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
PRICES = (
    "40 dollars", "75 dollars", "120 dollars", "200 dollars", "350 dollars", "500 dollars",
    "800 dollars", "1,200 dollars", "2,500 dollars", "4,000 dollars", "9,000 dollars", "15,000 dollars",
)

# ---------------------------------------------------------------------------------------------------------------
# Nouns with a taxonomy
# ---------------------------------------------------------------------------------------------------------------

# (singular, plural, parent). Parents form chains (poodle -> dog -> animal); a parent of None is a top category.
# Every noun here names a thing that can be bought, sold, lent, carried or painted, so any of them can fill
# the object of a transfer verb.
NOUN_TAXONOMY = (
    ("animal", "animals", None),
    ("dog", "dogs", "animal"), ("poodle", "poodles", "dog"), ("beagle", "beagles", "dog"),
    ("terrier", "terriers", "dog"), ("collie", "collies", "dog"),
    ("cat", "cats", "animal"), ("kitten", "kittens", "cat"),
    ("bird", "birds", "animal"), ("parrot", "parrots", "bird"), ("canary", "canaries", "bird"),
    ("horse", "horses", "animal"), ("pony", "ponies", "horse"),
    ("vehicle", "vehicles", None),
    ("car", "cars", "vehicle"), ("sedan", "sedans", "car"), ("convertible", "convertibles", "car"),
    ("truck", "trucks", "vehicle"), ("bicycle", "bicycles", "vehicle"), ("motorcycle", "motorcycles", "vehicle"),
    ("van", "vans", "vehicle"), ("boat", "boats", "vehicle"), ("canoe", "canoes", "boat"),
    ("yacht", "yachts", "boat"),
    ("furniture", None, None),
    ("chair", "chairs", "furniture"), ("armchair", "armchairs", "chair"), ("stool", "stools", "chair"),
    ("table", "tables", "furniture"), ("desk", "desks", "table"), ("sofa", "sofas", "furniture"),
    ("bed", "beds", "furniture"), ("bookcase", "bookcases", "furniture"), ("cabinet", "cabinets", "furniture"),
    ("instrument", "instruments", None),
    ("guitar", "guitars", "instrument"), ("violin", "violins", "instrument"), ("piano", "pianos", "instrument"),
    ("drum", "drums", "instrument"), ("flute", "flutes", "instrument"), ("trumpet", "trumpets", "instrument"),
    ("fruit", None, None),
    ("apple", "apples", "fruit"), ("pear", "pears", "fruit"), ("peach", "peaches", "fruit"),
    ("banana", "bananas", "fruit"), ("orange", "oranges", "fruit"), ("plum", "plums", "fruit"),
    ("clothing", None, None),
    ("coat", "coats", "clothing"), ("raincoat", "raincoats", "coat"), ("jacket", "jackets", "clothing"),
    ("shirt", "shirts", "clothing"), ("sweater", "sweaters", "clothing"), ("dress", "dresses", "clothing"),
    ("hat", "hats", "clothing"), ("scarf", "scarves", "clothing"),
    ("tool", "tools", None),
    ("hammer", "hammers", "tool"), ("saw", "saws", "tool"), ("drill", "drills", "tool"),
    ("wrench", "wrenches", "tool"), ("ladder", "ladders", "tool"),
    ("book", "books", None),
    ("novel", "novels", "book"), ("dictionary", "dictionaries", "book"), ("cookbook", "cookbooks", "book"),
    ("textbook", "textbooks", "book"), ("atlas", "atlases", "book"),
    ("painting", "paintings", None), ("portrait", "portraits", "painting"), ("landscape", "landscapes", "painting"),
    ("computer", "computers", None), ("laptop", "laptops", "computer"), ("tablet", "tablets", "computer"),
    ("container", "containers", None),
    ("box", "boxes", "container"), ("crate", "crates", "box"), ("basket", "baskets", "container"),
    ("suitcase", "suitcases", "container"), ("bag", "bags", "container"), ("backpack", "backpacks", "bag"),
    ("jar", "jars", "container"), ("bottle", "bottles", "container"),
)

# Synonyms used for meaning-preserving rewrites. Each tuple lists interchangeable singular nouns.
NOUN_SYNONYMS = (
    ("car", "automobile"), ("sofa", "couch"), ("bicycle", "bike"), ("painting", "picture"),
    ("motorcycle", "motorbike"), ("boat", "vessel"), ("bag", "sack"), ("laptop", "notebook computer"),
    ("armchair", "easy chair"), ("sedan", "saloon car"),
)
NOUN_SYNONYM_PLURALS = {
    "automobile": "automobiles", "couch": "couches", "bike": "bikes", "gift": "gifts", "picture": "pictures",
    "motorbike": "motorbikes", "vessel": "vessels", "sack": "sacks", "notebook computer": "notebook computers",
    "easy chair": "easy chairs", "saloon car": "saloon cars",
}

# ---------------------------------------------------------------------------------------------------------------
# Adjectives
# ---------------------------------------------------------------------------------------------------------------

# (adjective, antonym): attributive adjectives that fit any thing in NOUN_TAXONOMY.
ADJECTIVE_ANTONYMS = (("old", "new"), ("big", "small"), ("cheap", "expensive"), ("clean", "dirty"), ("heavy", "light"))
# adjective -> meaning-preserving substitute, for the same adjectives.
ADJECTIVE_SYNONYMS = (
    ("big", "large"), ("small", "little"), ("expensive", "costly"), ("cheap", "inexpensive"), ("dirty", "filthy"),
    ("new", "brand-new"), ("heavy", "weighty"),
)
# Colours: attributive adjectives that carry no size or value, so adding one is an "unsupported modifier".
COLOURS = ("red", "blue", "green", "black", "white", "yellow", "brown", "grey")

# ---------------------------------------------------------------------------------------------------------------
# Verbs
# ---------------------------------------------------------------------------------------------------------------

# Each verb: (base, third-person singular, past, past participle, present participle).

# Verbs of transfer between two people, as (giver verb, taker verb, taker preposition): "Anna sold the car to Ben"
# means "Ben bought the car from Anna". The giver verbs also allow the dative alternation
# ("sold Ben the car" = "sold the car to Ben").
TRANSFER_CONVERSES = (
    (("sell", "sells", "sold", "sold", "selling"), ("buy", "buys", "bought", "bought", "buying"), "from"),
    (("lend", "lends", "lent", "lent", "lending"), ("borrow", "borrows", "borrowed", "borrowed", "borrowing"), "from"),
    (("give", "gives", "gave", "given", "giving"),
     ("receive", "receives", "received", "received", "receiving"), "from"),
)
# Meaning-preserving substitutes for past-tense transfer verbs (same argument frame).
TRANSFER_SYNONYMS = (
    ("bought", "purchased"), ("received", "got"), ("gave", "handed"), ("lent", "loaned"),
)
# Past tenses with the same frame but a different meaning: "bought" vs "rented" is a near-synonym, not a paraphrase.
TRANSFER_NEAR_MISSES = (
    ("bought", "rented"), ("bought", "borrowed"), ("bought", "ordered"), ("borrowed", "stole"),
    ("sold", "lent"), ("sold", "showed"), ("gave", "lent"), ("gave", "sold"), ("lent", "gave"),
    ("received", "borrowed"), ("borrowed", "rented"), ("lent", "sold"),
)

# Verbs whose object is a person and whose subject and object are not interchangeable (swapping them changes the
# meaning): (verb forms, synonym past tense or None, near-miss past tense that changes meaning).
PERSON_VERBS = (
    (("hire", "hires", "hired", "hired", "hiring"), "employed", "fired"),
    (("call", "calls", "called", "called", "calling"), "phoned", "emailed"),
    (("help", "helps", "helped", "helped", "helping"), "assisted", "ignored"),
    (("visit", "visits", "visited", "visited", "visiting"), "went to see", "phoned"),
    (("thank", "thanks", "thanked", "thanked", "thanking"), "expressed gratitude to", "blamed"),
    (("praise", "praises", "praised", "praised", "praising"), "commended", "criticized"),
    (("beat", "beats", "beat", "beaten", "beating"), "defeated", "lost to"),
    (("warn", "warns", "warned", "warned", "warning"), "cautioned", "reassured"),
    (("interview", "interviews", "interviewed", "interviewed", "interviewing"), "questioned", "hired"),
    (("invite", "invites", "invited", "invited", "inviting"), None, "ignored"),
    (("follow", "follows", "followed", "followed", "following"), "trailed", "led"),
    (("recognize", "recognizes", "recognized", "recognized", "recognizing"), "identified", "ignored"),
    (("contact", "contacts", "contacted", "contacted", "contacting"), "got in touch with", "avoided"),
    (("teach", "teaches", "taught", "taught", "teaching"), "instructed", "learned from"),
    (("pay", "pays", "paid", "paid", "paying"), "compensated", "charged"),
)

# Verbs whose object is a thing: (forms, synonym past tense, near-miss past tense that changes meaning).
THING_VERBS = (
    (("repair", "repairs", "repaired", "repaired", "repairing"), "fixed", "replaced"),
    (("paint", "paints", "painted", "painted", "painting"), "repainted", "cleaned"),
    (("clean", "cleans", "cleaned", "cleaned", "cleaning"), "washed", "painted"),
    (("choose", "chooses", "chose", "chosen", "choosing"), "selected", "rejected"),
    (("find", "finds", "found", "found", "finding"), "discovered", "lost"),
    (("inspect", "inspects", "inspected", "inspected", "inspecting"), "examined", "bought"),
    (("deliver", "delivers", "delivered", "delivered", "delivering"), "dropped off", "picked up"),
    (("collect", "collects", "collected", "collected", "collecting"), "gathered", "scattered"),
    (("hide", "hides", "hid", "hidden", "hiding"), "concealed", "displayed"),
    (("order", "orders", "ordered", "ordered", "ordering"), "requested", "cancelled"),
    (("photograph", "photographs", "photographed", "photographed", "photographing"), "took pictures of",
     "painted"),
    (("move", "moves", "moved", "moved", "moving"), "relocated", "kept"),
)

# Transitive verbs for the acceptability task, mostly irregular so that a wrong participle ("has went") exists,
# each with the class of object it takes sensibly (see ACCEPTABILITY_OBJECTS).
IRREGULAR_TRANSITIVE_VERBS = (
    (("take", "takes", "took", "taken", "taking"), "thing"), (("see", "sees", "saw", "seen", "seeing"), "thing"),
    (("write", "writes", "wrote", "written", "writing"), "text"), (("eat", "eats", "ate", "eaten", "eating"), "food"),
    (("break", "breaks", "broke", "broken", "breaking"), "thing"),
    (("choose", "chooses", "chose", "chosen", "choosing"), "thing"),
    (("steal", "steals", "stole", "stolen", "stealing"), "thing"),
    (("drive", "drives", "drove", "driven", "driving"), "vehicle"),
    (("throw", "throws", "threw", "thrown", "throwing"), "thing"),
    (("hide", "hides", "hid", "hidden", "hiding"), "thing"),
    (("forget", "forgets", "forgot", "forgotten", "forgetting"), "thing"),
    (("draw", "draws", "drew", "drawn", "drawing"), "thing"), (("know", "knows", "knew", "known", "knowing"), "person"),
    (("wear", "wears", "wore", "worn", "wearing"), "clothing"),
    (("ride", "rides", "rode", "ridden", "riding"), "rideable"),
    (("shake", "shakes", "shook", "shaken", "shaking"), "thing"),
    (("bite", "bites", "bit", "bitten", "biting"), "food"),
    (("sing", "sings", "sang", "sung", "singing"), "song"),
    (("begin", "begins", "began", "begun", "beginning"), "text"),
    (("sell", "sells", "sold", "sold", "selling"), "thing"), (("buy", "buys", "bought", "bought", "buying"), "thing"),
    (("bring", "brings", "brought", "brought", "bringing"), "thing"),
    (("meet", "meets", "met", "met", "meeting"), "person"),
    (("teach", "teaches", "taught", "taught", "teaching"), "person"),
)
# (singular, plural) objects per class, for sensible verb-object combinations.
ACCEPTABILITY_OBJECTS = {
    "thing": (("book", "books"), ("box", "boxes"), ("key", "keys"), ("umbrella", "umbrellas"), ("bottle", "bottles"),
              ("guitar", "guitars"), ("hammer", "hammers"), ("painting", "paintings"), ("lamp", "lamps"),
              ("bag", "bags"), ("camera", "cameras"), ("watch", "watches"), ("ticket", "tickets"),
              ("photograph", "photographs"), ("ladder", "ladders"), ("basket", "baskets")),
    "text": (("letter", "letters"), ("report", "reports"), ("poem", "poems"), ("story", "stories"),
             ("essay", "essays"), ("novel", "novels")),
    "food": (("apple", "apples"), ("sandwich", "sandwiches"), ("cake", "cakes"), ("pear", "pears"),
             ("cookie", "cookies"), ("peach", "peaches")),
    "vehicle": (("car", "cars"), ("truck", "trucks"), ("van", "vans"), ("bus", "buses"), ("tractor", "tractors")),
    "rideable": (("bicycle", "bicycles"), ("horse", "horses"), ("motorcycle", "motorcycles"), ("pony", "ponies")),
    "clothing": (("coat", "coats"), ("hat", "hats"), ("scarf", "scarves"), ("sweater", "sweaters"),
                 ("jacket", "jackets"), ("dress", "dresses")),
    "song": (("song", "songs"), ("hymn", "hymns"), ("lullaby", "lullabies"), ("ballad", "ballads")),
    "person": (("teacher", "teachers"), ("student", "students"), ("doctor", "doctors"), ("child", "children"),
               ("woman", "women"), ("man", "men"), ("farmer", "farmers"), ("neighbor", "neighbors"),
               ("pilot", "pilots"), ("nurse", "nurses"), ("actor", "actors"), ("guest", "guests")),
}
# Adjectives for acceptability sentences' noun phrases, for things and for people.
THING_ADJECTIVES = ("old", "new", "small", "large", "strange", "heavy", "beautiful", "cheap", "red", "blue", "lovely",
                    "expensive")
PERSON_ADJECTIVES = ("old", "young", "famous", "friendly", "tall", "quiet", "new", "clever", "tired", "nervous")
# Verbs of state, which sound odd in the progressive ("is needing").
STATIVE_VERBS = ("know", "need", "want", "own", "admire", "like", "trust", "remember")

# Regular transitive verbs whose object cannot be dropped ("Anna devoured." is unacceptable), with their object class.
OBLIGATORY_OBJECT_VERBS = (
    (("devour", "devours", "devoured", "devoured", "devouring"), "food"),
    (("lift", "lifts", "lifted", "lifted", "lifting"), "thing"),
    (("grab", "grabs", "grabbed", "grabbed", "grabbing"), "thing"),
    (("fix", "fixes", "fixed", "fixed", "fixing"), "thing"),
    (("borrow", "borrows", "borrowed", "borrowed", "borrowing"), "thing"),
    (("carry", "carries", "carried", "carried", "carrying"), "thing"),
    (("destroy", "destroys", "destroyed", "destroyed", "destroying"), "thing"),
    (("examine", "examines", "examined", "examined", "examining"), "thing"),
    (("describe", "describes", "described", "described", "describing"), "thing"),
    (("mention", "mentions", "mentioned", "mentioned", "mentioning"), "text"),
    (("wrap", "wraps", "wrapped", "wrapped", "wrapping"), "thing"),
    (("polish", "polishes", "polished", "polished", "polishing"), "thing"),
    (("admire", "admires", "admired", "admired", "admiring"), "thing"),
    (("want", "wants", "wanted", "wanted", "wanting"), "thing"),
    (("need", "needs", "needed", "needed", "needing"), "thing"),
    (("own", "owns", "owned", "owned", "owning"), "vehicle"),
    (("resemble", "resembles", "resembled", "resembled", "resembling"), "person"),
    (("greet", "greets", "greeted", "greeted", "greeting"), "person"),
)
# Verbs that never take a direct object ("The box arrived." but not "Anna arrived the box.").
INTRANSITIVE_VERBS = (
    ("arrive", "arrives", "arrived", "arrived", "arriving"), ("sleep", "sleeps", "slept", "slept", "sleeping"),
    ("sneeze", "sneezes", "sneezed", "sneezed", "sneezing"), ("yawn", "yawns", "yawned", "yawned", "yawning"),
    ("laugh", "laughs", "laughed", "laughed", "laughing"), ("smile", "smiles", "smiled", "smiled", "smiling"),
    ("vanish", "vanishes", "vanished", "vanished", "vanishing"),
    ("disappear", "disappears", "disappeared", "disappeared", "disappearing"),
    ("fall", "falls", "fell", "fallen", "falling"), ("go", "goes", "went", "gone", "going"),
    ("cough", "coughs", "coughed", "coughed", "coughing"), ("shiver", "shivers", "shivered", "shivered",
                                                          "shivering"),
    ("hesitate", "hesitates", "hesitated", "hesitated", "hesitating"),
    ("wait", "waits", "waited", "waited", "waiting"), ("rise", "rises", "rose", "risen", "rising"),
    ("collapse", "collapses", "collapsed", "collapsed", "collapsing"),
)
# Adverbials an intransitive verb can end with.
INTRANSITIVE_ENDINGS = (
    "quietly", "again", "at last", "for a while", "in the morning", "after lunch", "without a word",
    "near the door", "on the stairs", "in the kitchen", "late at night", "during the meeting",
)
# (preposition, location noun) for "put the book on the table".
LOCATIONS = (
    ("on", "table"), ("on", "shelf"), ("in", "drawer"), ("under", "bed"), ("near", "window"),
    ("behind", "door"), ("in", "garage"), ("next to", "fireplace"), ("in", "kitchen"), ("on", "bench"),
)
# (preposition, singular, plural) for a modifier after a person: "the teacher near the windows".
PERSON_MODIFIER_PLACES = (
    ("from", "village", "villages"), ("near", "window", "windows"), ("with", "umbrella", "umbrellas"),
    ("behind", "door", "doors"), ("next to", "fireplace", "fireplaces"), ("on", "bench", "benches"),
    ("beside", "car", "cars"), ("in charge of", "project", "projects"), ("at", "table", "tables"),
    ("with", "key", "keys"),
)
# (base, third-person singular, past) of verbs in object relative clauses: "the teacher who the students admire".
RELATIVE_CLAUSE_VERBS = (
    ("like", "likes", "liked"), ("trust", "trusts", "trusted"), ("admire", "admires", "admired"),
    ("know", "knows", "knew"), ("meet", "meets", "met"), ("visit", "visits", "visited"),
    ("help", "helps", "helped"), ("remember", "remembers", "remembered"),
)
# Nouns for people in the acceptability task: (singular, plural), including irregular plurals.
PERSON_NOUNS = (
    ("teacher", "teachers"), ("student", "students"), ("doctor", "doctors"), ("child", "children"),
    ("woman", "women"), ("man", "men"), ("farmer", "farmers"), ("neighbor", "neighbors"), ("pilot", "pilots"),
    ("nurse", "nurses"), ("actor", "actors"), ("writer", "writers"), ("baker", "bakers"), ("guest", "guests"),
)
# Verbs complementing "tried to", "wanted to", ...: (base, past), with a thing object following.
ATTEMPT_VERBS = ("tried to", "wanted to", "planned to", "hoped to", "refused to", "offered to", "promised to",
                 "was asked to", "failed to", "decided not to")
SUCCESS_VERBS = ("managed to", "went on to", "did in fact", "finally got to")
