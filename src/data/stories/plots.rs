//! Story templates: a shared setting, then one of ten plots, each a sequence of slots
//! (problem → attempt → resolution → moral). A slot is a list of alternatives; optional slots
//! are dropped at random or to keep a story within 10 sentences.
//!
//! Placeholders: `{name} {He} {he} {him} {His} {his} {kind} {trait}` (main character),
//! `{friend} {fHe} {fhe} {fhim} {fhis} {rel} {fkind}` (companion), `{obj} {noun} {color}`
//! (the object), `{place} {Place} {spot} {spot2}`, `{happy} {sad} {weather} {grown} {Grown}
//! {fear} {fix} {critter} {contest}`.
//!
//! Every resolution names the main character and the object introduced in the setting: the
//! long-range consistency a model has to keep (probed later from the story's metadata).

/// One sentence position: required or optional, and its alternatives.
pub struct Slot(pub bool, pub &'static [&'static str]);

const fn req(alts: &'static [&'static str]) -> Slot {
    Slot(true, alts)
}

const fn opt(alts: &'static [&'static str]) -> Slot {
    Slot(false, alts)
}

pub struct Plot {
    pub name: &'static str,
    /// The companion is met during the story rather than introduced in the setting.
    pub meets_companion: bool,
    pub problem: &'static [Slot],
    pub attempt: &'static [Slot],
    pub resolution: &'static [Slot],
    pub moral: &'static [Slot],
}

/// The setting when it takes one sentence.
pub const SHORT_SETTING: &[&str] = &[
    "Once upon a time, a {trait} {kind} named {name} took {his} {obj} to {place}.",
    "One {weather} day, {name} the {kind} went to {place} with {his} {obj}.",
    "{name} was a {trait} {kind} who loved {his} {obj} and liked to play at {place}.",
];

/// The one-sentence setting when the companion is there from the start.
pub const SHORT_SETTING_WITH_COMPANION: &[&str] = &[
    "Once upon a time, a {trait} {kind} named {name} took {his} {obj} to {place} with {his} {rel}, {friend}.",
    "One {weather} day, {name} the {kind} and {his} {rel} {friend} went to {place} with {his} {obj}.",
    "{name} was a {trait} {kind} who loved {his} {obj} and liked to play at {place} with {his} {rel}, {friend}.",
];

pub const INTRO: &[&str] = &[
    "Once upon a time, there was a {trait} {kind} named {name}.",
    "There once was a {trait} {kind} called {name}.",
    "{name} was a {trait} {kind} who loved to play.",
    "Once upon a time, in a little town, lived a {trait} {kind} named {name}.",
    "Once there was a {kind} named {name}. {He} was very {trait}.",
];

pub const OBJECT: &[&str] = &[
    "{He} had a {obj} that {he} loved very much.",
    "{His} favorite toy was a {obj}.",
    "{name} had a {obj}. It was {his} favorite thing in the whole world.",
    "Every day, {name} played with {his} {obj}.",
    "{name} always carried {his} {obj} everywhere.",
];

pub const COMPANION: &[&str] = &[
    "{name} had a {rel} named {friend}.",
    "{His} {rel}, {friend}, lived close by.",
    "{friend} was {name}'s {rel}.",
    "{name} liked to play with {his} {rel}, {friend}.",
];

pub const GO_TO_PLACE: &[&str] = &[
    "One {weather} day, {name} went to {place}.",
    "One day, {name} took {his} {obj} to {place}.",
    "One {weather} morning, {name} and {his} {obj} went to {place}.",
    "After lunch, {name} went out to play at {place}.",
];

pub const PLACE_DETAIL: &[&str] = &[
    "{Place} was full of flowers and birds.",
    "The sun was warm and the sky was blue.",
    "{name} liked {spot} best of all.",
    "There were many things to see at {place}.",
];

pub const PLOTS: &[Plot] = &[
    Plot {
        name: "lost_object",
        meets_companion: false,
        problem: &[
            opt(&[
                "{name} played near {spot} all morning.",
                "{He} ran and jumped around {spot}.",
            ]),
            req(&[
                "When it was time to go home, {name} could not find {his} {obj}!",
                "Suddenly, {name} saw that {his} {obj} was gone!",
                "But then {name} looked around. {His} {obj} was not there!",
            ]),
            opt(&["{He} felt very {sad}.", "{name} began to cry."]),
        ],
        attempt: &[
            req(&[
                "\"Don't worry, I will help you look,\" said {friend}.",
                "{friend} said, \"Let's look for it together!\"",
                "\"We can find it,\" said {friend}. \"Let's look everywhere!\"",
            ]),
            opt(&[
                "They looked under {spot2}, but it was not there.",
                "They looked behind {spot2}. They looked in the grass. It was not there.",
            ]),
            opt(&["{name} wanted to give up, but {friend} said, \"Let's look one more time.\""]),
        ],
        resolution: &[
            req(&[
                "At last, {friend} saw something {color} near {spot}. It was {name}'s {obj}!",
                "Then {name} saw the {obj} under {spot}. {His} {obj} was there all along!",
                "Just then, {friend} found the {obj} behind {spot} and gave it to {name}.",
            ]),
            opt(&[
                "{name} hugged {his} {obj} and said, \"Thank you, {friend}!\"",
                "{name} was so {happy}. {He} held {his} {obj} tight and smiled at {friend}.",
            ]),
        ],
        moral: &[opt(&[
            "From that day on, {name} always kept {his} {obj} close.",
            "{name} learned that good friends always help each other.",
            "And {name} never lost {his} {obj} again.",
        ])],
    },
    Plot {
        name: "sharing",
        meets_companion: false,
        problem: &[
            req(&[
                "{friend} saw the {obj} and wanted to play with it too.",
                "{friend} asked, \"Can I play with your {noun}, please?\"",
            ]),
            req(&[
                "But {name} said, \"No! It is mine!\"",
                "{name} held the {noun} tight and shook {his} head.",
            ]),
            opt(&[
                "{friend} felt {sad} and walked away.",
                "{friend} looked at the ground. {fHe} was very {sad}.",
            ]),
        ],
        attempt: &[
            req(&[
                "{name} played alone, but it was not fun anymore.",
                "Soon {name} felt lonely. Playing alone was boring.",
            ]),
            opt(&[
                "{He} thought about {friend}.",
                "{He} remembered what {grown} said: \"Sharing makes everyone happy.\"",
            ]),
        ],
        resolution: &[
            req(&[
                "{name} ran to {friend} and said, \"I am sorry. Let's play with my {obj} together!\"",
                "{name} went to {friend} and gave {fhim} the {obj}. \"We can share it,\" {he} said.",
            ]),
            opt(&[
                "{name} and {friend} played with the {obj} until the sun went down.",
                "Together, {name} and {friend} had lots of fun with the {obj}.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that sharing is better than keeping things to yourself.",
            "Sharing made them both {happy}.",
        ])],
    },
    Plot {
        name: "fear",
        meets_companion: false,
        problem: &[
            req(&[
                "But {name} was afraid of {fear}.",
                "At {place}, {name} saw {fear} and stopped.",
            ]),
            opt(&[
                "{His} legs shook and {he} wanted to go home.",
                "\"I am scared,\" {name} said in a small voice.",
            ]),
        ],
        attempt: &[
            req(&[
                "{friend} held {name}'s hand. \"I am here with you,\" {fhe} said.",
                "\"You can do it,\" said {friend}. \"Be brave!\"",
            ]),
            opt(&[
                "{name} hugged {his} {obj} and took a deep breath.",
                "{name} held {his} {obj} close. It made {him} feel safe.",
            ]),
        ],
        resolution: &[
            req(&[
                "Step by step, {name} was brave. With {his} {obj} in {his} arms, {fear} was not so scary after all.",
                "{name} took one small step, then another, holding {his} {obj}. Soon {he} was not afraid anymore.",
            ]),
            opt(&[
                "{name} smiled and lifted {his} {obj} high. \"I did it!\" {he} said to {friend}.",
                "{friend} cheered, and {name} hugged {his} {obj} with a big smile.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that being brave is easier with a friend.",
            "From then on, {name} was never so afraid again.",
        ])],
    },
    Plot {
        name: "broken",
        meets_companion: false,
        problem: &[
            req(&[
                "One day, the {obj} fell and broke.",
                "Oh no! {name} dropped the {obj} and it broke.",
            ]),
            opt(&[
                "{name} was very {sad}. {He} started to cry.",
                "\"My {noun}!\" cried {name}.",
            ]),
        ],
        attempt: &[
            req(&[
                "{friend} came to help. \"Maybe we can fix it,\" {fhe} said.",
                "{friend} said, \"Don't be sad. {Grown} can help us fix it.\"",
            ]),
            opt(&[
                "They got {fix} and worked very hard.",
                "They used {fix} and worked slowly and carefully.",
            ]),
        ],
        resolution: &[
            req(&[
                "Soon {name}'s {obj} was as good as new. {name} was so {happy}!",
                "At last, {name}'s {obj} was fixed!",
            ]),
            opt(&[
                "{name} thanked {friend} and they played with the {obj} all afternoon.",
                "{name} gave {friend} a big hug and held {his} {obj} tight.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that when something breaks, friends can help fix it.",
            "From then on, {name} was careful with {his} {obj}.",
        ])],
    },
    Plot {
        name: "stuck",
        meets_companion: false,
        problem: &[
            req(&[
                "{name} threw the {obj} up high, and it got stuck in {spot}.",
                "A big wind came and blew the {obj} into {spot}. It was stuck!",
            ]),
            opt(&[
                "{name} could not reach it.",
                "{name} jumped and jumped, but {he} was too small.",
            ]),
        ],
        attempt: &[
            req(&[
                "{friend} tried to reach it with a long stick, but it was too high.",
                "{friend} climbed on a box, but {fhe} could not reach it either.",
            ]),
            opt(&[
                "Then {name} had an idea.",
                "\"Let's ask {grown} for help!\" said {name}.",
            ]),
        ],
        resolution: &[
            req(&[
                "{Grown} came with a ladder and got the {obj} down for {name}.",
                "{name} and {friend} pushed a big box close and climbed up together. They got the {obj} down!",
            ]),
            opt(&[
                "{name} was so {happy} to have {his} {obj} back.",
                "{name} held {his} {obj} and said, \"Thank you!\"",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that working together can solve big problems.",
            "After that, {name} and {friend} played with the {obj} far away from {spot}.",
        ])],
    },
    Plot {
        name: "new_friend",
        meets_companion: true,
        problem: &[
            req(&[
                "{name} sat alone near {spot}. {He} had no one to play with.",
                "At {place}, all the others were playing, but {name} was alone.",
            ]),
            opt(&["{He} felt lonely and {sad}."]),
        ],
        attempt: &[
            req(&[
                "Then {name} saw a {fkind} named {friend} sitting by {spot2}.",
                "Then a {fkind} named {friend} came over and said, \"Hello! What is that?\"",
            ]),
            opt(&[
                "{name} showed {friend} the {obj}. \"Do you want to play?\" {he} asked.",
                "\"This is my {noun},\" said {name}. \"Do you want to play with it?\"",
            ]),
        ],
        resolution: &[
            req(&[
                "{friend} smiled and said, \"Yes!\" {name} and {friend} played with the {obj} all day.",
                "{name} and {friend} took turns with the {obj} and laughed and laughed.",
            ]),
            opt(&[
                "{name} was not lonely anymore.",
                "Now {name} had a new friend, {friend}.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that sharing is a good way to make friends.",
            "Every day after that, {name} and {friend} played together at {place}.",
        ])],
    },
    Plot {
        name: "gift",
        meets_companion: false,
        problem: &[
            req(&[
                "Tomorrow was {friend}'s birthday, and {name} had no present.",
                "{name} wanted to give {friend} a gift, but {he} had no money.",
            ]),
            opt(&[
                "{He} thought and thought.",
                "{name} felt {sad}. What could {he} give?",
            ]),
        ],
        attempt: &[
            req(&[
                "Then {name} looked at {his} {obj}.",
                "{name} looked at {his} {obj} for a long time.",
            ]),
            opt(&[
                "It was {his} favorite thing, but {friend} always liked it too.",
                "\"{friend} loves my {noun},\" {he} thought.",
            ]),
        ],
        resolution: &[
            req(&[
                "The next day, {name} gave {friend} the {obj}. {friend} was so {happy}!",
                "At the party, {name} gave the {obj} to {friend} with a big smile.",
            ]),
            opt(&[
                "\"Thank you, {name}!\" said {friend}. \"This is the best gift ever!\"",
                "{friend} hugged {name} and held the {obj} tight.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that giving feels even better than getting.",
            "{name} felt warm inside. Giving made {him} {happy}.",
        ])],
    },
    Plot {
        name: "rainy_day",
        meets_companion: false,
        problem: &[
            req(&[
                "{name} wanted to play with {his} {obj} outside, but then it began to rain.",
                "Just as {name} got {his} {obj}, dark clouds came and it started to rain.",
            ]),
            opt(&["\"Now we can't play outside,\" said {name}. {He} felt {sad}."]),
        ],
        attempt: &[
            req(&[
                "{friend} had an idea. \"Let's play inside!\"",
                "\"We can make a fort with blankets,\" said {friend}.",
            ]),
            opt(&[
                "They built a little fort and took the {obj} inside.",
                "They made a tent with chairs and a blanket.",
            ]),
        ],
        resolution: &[
            req(&[
                "{name} and {friend} played with the {obj} in their fort all afternoon.",
                "Inside the fort, {name} played with {his} {obj} and told stories with {friend}.",
            ]),
            opt(&[
                "When the rain stopped, {name} said, \"That was the best day!\"",
                "{name} laughed. Rainy days could be fun too.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that you can have fun anywhere with a good friend.",
            "The next sunny day, they took the {obj} to {place} together.",
        ])],
    },
    Plot {
        name: "help_animal",
        meets_companion: false,
        problem: &[
            req(&[
                "At {place}, {name} found a little {critter} near {spot}. It was hurt.",
                "Near {spot}, {name} heard a small cry. It was a little {critter} that could not move.",
            ]),
            opt(&[
                "The {critter} looked cold and scared.",
                "The poor {critter} was all alone.",
            ]),
        ],
        attempt: &[
            req(&[
                "{name} and {friend} wanted to help.",
                "\"We must help it,\" said {friend}.",
            ]),
            opt(&[
                "They gave it water and kept it warm.",
                "They asked {grown} what to do. \"Let it rest,\" said {grown}.",
            ]),
        ],
        resolution: &[
            req(&[
                "The next day, the {critter} was better. It played with {name}'s {obj} and then went home happily.",
                "Soon the {critter} was well again, and {name} watched it go home. {name} smiled and picked up {his} {obj}.",
            ]),
            opt(&[
                "{name} and {friend} felt very {happy}.",
                "{name} was proud that {he} helped.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that it is good to be kind to animals.",
            "Being kind made {name}'s heart feel warm.",
        ])],
    },
    Plot {
        name: "contest",
        meets_companion: false,
        problem: &[
            req(&[
                "At {place}, there was {contest}, and {name} wanted to win.",
                "{name} and {friend} joined {contest} at {place}.",
            ]),
            opt(&[
                "{name} brought {his} {obj} for good luck.",
                "{name} held {his} {obj} for luck.",
            ]),
            req(&[
                "But {name} tripped and fell down.",
                "But {friend} won, and {name} came last.",
            ]),
        ],
        attempt: &[
            req(&[
                "{name} felt {sad}. {He} wanted to quit.",
                "{name} sat down and frowned.",
            ]),
            opt(&[
                "{friend} came over and said, \"It's okay. It was fun to play together!\"",
                "\"You did your best,\" said {friend}. \"That is what counts.\"",
            ]),
        ],
        resolution: &[
            req(&[
                "{name} smiled, picked up {his} {obj}, and played again with {friend}.",
                "{name} got up, held {his} {obj}, and laughed with {friend}.",
            ]),
            opt(&[
                "This time, {name} had so much fun that {he} forgot about winning.",
                "{name} was {happy} again.",
            ]),
        ],
        moral: &[opt(&[
            "{name} learned that playing together is more fun than winning.",
            "Winning was not the most important thing.",
        ])],
    },
];
