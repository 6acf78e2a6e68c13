//! Word lists of the story generator: who, where, what and how they feel. Sized so that the
//! corpus is varied (tens of thousands of distinct sentences) yet stays in the vocabulary of
//! a 3–5 year old.

pub const GIRLS: &[&str] = &[
    "Lily", "Mia", "Sue", "Anna", "Lucy", "Emma", "Sara", "Zoe", "Amy", "Ella", "Rosa", "Nina",
    "Maya", "Kate", "Ivy", "Ruby", "Daisy", "Hana", "Lena", "Tess", "Olive", "Grace", "Jenny",
    "Molly", "Pia", "June", "Nora", "Rita", "Clara", "Fern", "Wendy", "Holly", "Bella", "Kira",
    "Layla", "Aisha", "Mei", "Sofia", "Alma", "Dora", "Poppy", "Iris", "Gemma", "Tara", "Yuki",
    "Elsa", "Luna", "Hazel",
];

pub const BOYS: &[&str] = &[
    "Tim", "Ben", "Sam", "Max", "Tom", "Leo", "Jack", "Finn", "Joe", "Dan", "Noah", "Eli", "Omar",
    "Kai", "Theo", "Luke", "Alex", "Ravi", "Jake", "Owen", "Hugo", "Milo", "Ned", "Pete", "Carlos",
    "Ken", "Ari", "Jonah", "Rex", "Toby", "Oscar", "Ian", "Hank", "Zack", "Bo", "Felix", "Arlo",
    "Nico", "Ezra", "Amir", "Jasper", "Rory", "Sid", "Otto", "Gus", "Ollie", "Ivan", "Dev",
];

/// What the main character is: a child, or a small animal.
pub const KINDS: &[&str] = &[
    "bunny", "fox", "bear", "kitten", "puppy", "duck", "mouse", "squirrel", "frog", "owl", "pig",
    "lamb", "turtle", "bird", "hedgehog", "deer", "raccoon", "otter", "penguin", "koala",
];

pub const TRAITS: &[&str] = &[
    "little", "brave", "kind", "shy", "curious", "playful", "clever", "gentle", "happy", "busy",
    "silly", "friendly", "quiet", "cheerful", "small", "helpful", "sleepy", "lively",
];

/// A companion's relation to the main character, and its pronoun (`None` = by the name's list).
pub const RELATIONS: &[(&str, Option<bool>)] = &[
    ("friend", None),
    ("best friend", None),
    ("sister", Some(true)),
    ("brother", Some(false)),
    ("cousin", None),
    ("neighbor", None),
];

/// Pets go by their own names.
pub const PETS: &[&str] = &["dog", "cat", "puppy", "kitten", "parrot"];
pub const PET_NAMES: &[&str] = &[
    "Spot", "Buddy", "Rusty", "Coco", "Pepper", "Biscuit", "Patch", "Whiskers", "Fluffy", "Sunny",
    "Pickles", "Muffin", "Socks", "Ziggy", "Bean",
];

/// Grown-ups who may help.
pub const GROWNUPS: &[&str] = &[
    "Mom",
    "Dad",
    "Grandma",
    "Grandpa",
    "the teacher",
    "Aunt May",
    "Uncle Joe",
];

pub const OBJECTS: &[&str] = &[
    "ball",
    "kite",
    "teddy bear",
    "toy car",
    "doll",
    "book",
    "hat",
    "drum",
    "toy boat",
    "balloon",
    "shell",
    "crayon box",
    "blanket",
    "wagon",
    "bucket",
    "scarf",
    "toy robot",
    "puzzle",
    "jump rope",
    "whistle",
    "marble",
    "lunch box",
    "umbrella",
    "music box",
    "toy train",
    "yo-yo",
    "paper crown",
    "flute",
    "bike",
    "picture book",
    "toy dinosaur",
    "sand shovel",
    "star sticker",
    "rag doll",
    "spinning top",
    "tea set",
];

pub const COLORS: &[&str] = &[
    "red", "blue", "yellow", "green", "shiny", "soft", "new", "old", "striped", "spotty", "purple",
    "pink", "orange", "golden", "wooden", "fluffy", "tiny", "bright", "silver", "sparkly",
];

/// A place and three spots in it (for hiding, finding, sitting).
pub const PLACES: &[(&str, [&str; 3])] = &[
    (
        "the park",
        ["the big slide", "the old oak tree", "the swings"],
    ),
    (
        "the garden",
        ["the rose bush", "the tall sunflowers", "the little shed"],
    ),
    (
        "the forest",
        ["a mossy log", "a big rock", "a tall pine tree"],
    ),
    (
        "the beach",
        ["a sand castle", "a pile of seaweed", "a big umbrella"],
    ),
    (
        "the farm",
        ["the red barn", "the hay pile", "the duck pond"],
    ),
    ("the lake", ["the wooden dock", "the reeds", "a flat stone"]),
    (
        "school",
        ["the reading corner", "the coat hooks", "the sand box"],
    ),
    (
        "the library",
        ["the tall shelf", "the soft rug", "the big window"],
    ),
    (
        "the backyard",
        ["the apple tree", "the fence", "the flower bed"],
    ),
    (
        "the meadow",
        ["the tall grass", "a patch of daisies", "a little stream"],
    ),
    (
        "the hill",
        ["a round bush", "the top of the hill", "a big stone"],
    ),
    (
        "the market",
        ["the fruit stand", "a stack of boxes", "the bread cart"],
    ),
    (
        "the zoo",
        ["the monkey house", "a green bench", "the big gate"],
    ),
    (
        "the river",
        ["the little bridge", "the willow tree", "a sandy bank"],
    ),
    (
        "the playground",
        ["the seesaw", "the climbing frame", "the sandpit"],
    ),
    (
        "the kitchen",
        ["the big table", "the cupboard", "the cookie jar"],
    ),
    (
        "the attic",
        ["an old trunk", "a dusty box", "the round window"],
    ),
    ("the camp", ["the tent", "the campfire", "a pile of sticks"]),
    (
        "the pond",
        ["the lily pads", "a tall reed", "the muddy bank"],
    ),
    (
        "the toy shop",
        ["the window", "a shelf of bears", "the counter"],
    ),
];

pub const HAPPY: &[&str] = &["happy", "glad", "proud", "excited", "cheerful", "joyful"];
pub const SAD: &[&str] = &["sad", "upset", "worried", "unhappy", "gloomy"];

pub const WEATHER: &[&str] = &["sunny", "windy", "warm", "bright", "cool", "snowy", "quiet"];

/// Things a small child may be afraid of, with where they are met.
pub const FEARS: &[&str] = &[
    "the dark",
    "the thunder",
    "the big waves",
    "the tall slide",
    "the deep water",
    "the loud dog",
    "the buzzing bees",
    "the big shadow",
    "the creaky stairs",
    "the high branch",
];

/// How a broken thing gets fixed.
pub const FIXES: &[&str] = &[
    "some glue",
    "a roll of tape",
    "a needle and thread",
    "a bit of string",
    "some paint",
];

/// Hurt or lost animals to help.
pub const CRITTERS: &[&str] = &[
    "bird",
    "kitten",
    "puppy",
    "duckling",
    "bunny",
    "butterfly",
    "baby owl",
    "snail",
];

/// What a contest is about.
pub const CONTESTS: &[&str] = &[
    "a race",
    "a jumping game",
    "a singing contest",
    "a drawing game",
    "a hide and seek game",
];
