"""Caption phrases for the generated memes of the shipped sample (scripts/make_memes.py --sample).

Written for memetui: 2–6 words each, no trademarks, no real people, no phrase inside another.
A phrase with a colon is split there for the classic top/bottom style.
"""

PHRASES = """
when the code compiles
nobody: absolutely nobody
me explaining to my cat
it works on my machine
this is fine probably
monday again already
five more minutes please
when the pizza arrives
me at three in the morning
the group chat at midnight
my last brain cell
when someone says free food
not today thank you
trust me i am an engineer
this meeting could be an email
weekend plans: sleep
my plants are thriving
low battery high anxiety
the printer strikes again
bonus fries in the bag
i came here to have fun
that escalated quickly
when the alarm rings
too tired to be tired
me pretending to work
the fridge is empty again
when the bus leaves early
calm before the storm
my code my rules
where did my socks go
i regret nothing
send snacks immediately
the vibes are immaculate
when the song slaps
homework due at midnight
running late as usual
error between chair and keyboard
when the tests pass
seen it all before
dinner is served somehow
who left the door open
the dog ate my homework
when mom finds the receipt
this meeting is a mystery
brain buffering please wait
when the soup is too hot
a wild bug appears
loading motivation
i have a cunning plan
they grow up so fast
hello darkness my old pal
not my circus not my monkeys
who needs sleep anyway
that moment of pure regret
when the train is on time
cooking with zero skills
i am the captain now
the plot thickens
when the rain stops
just one more episode
instructions unclear
my diet starts tomorrow
rise and grind
feeling cute might delete later
budget meal champion
when friday finally hits
the neighbours are at it again
expert at doing nothing
self care is sleeping
when the cat knocks it over
professional overthinker
tiny but mighty
stay hydrated friends
my brain during exams
ready for the weekend
the bold choice
look at this absolute unit
new hobby unlocked
what even is cardio
the ice cream truck song
my inner child approves
time to touch grass
the side quest begins
another day another bug
why is it always tuesday
coffee first questions later
when the page finally loads
my reaction to the news
emotional support snack
a tale of two bugs
confused but still going
chaos in the kitchen
the ultimate comeback
when they say it is easy
living my best life
peace was never an option
just vibing here
technically not wrong
when you open the oven
never skip leg day
this could have gone better
i know that feeling
big mood all week
the audacity of this goose
i see no problem here
when the cake falls over
every single time
it is what it is
plans cancelled joy achieved
when you spot a friendly dog
the chosen one arrives
sir this is a bakery
nailed it sort of
do not touch my snacks
my sleep schedule is gone
the internet is down again
when the baby finally sleeps
battle of the thermostat
i made this myself
patience level zero
the duck knows everything
me waiting for the kettle
what could possibly go wrong
an unexpected twist
totally under control
my garden my kingdom
when the socks match
parallel parking champion
nap time is sacred
every day is laundry day
that is a lot of cheese
the grand finale
trying my very best
spicy food regrets
the moon looks suspicious
dancing like nobody watches
when the snow day is announced
just a little treat
running on pure spite
the frog has a point
mission accomplished barely
i blame the weather
cleanest room in history
tea time at last
my wallet after the holidays
the robot is judging me
when the batteries die
bring back the good days
a very serious business
adulting is hard
why did i say yes
me versus the stairs
the sandwich deserves respect
nothing to see here
breakfast at noon
when the lights go out
the great sock heist
just keep swimming along
sleepy but determined
the tomato is plotting
one more cup of tea
no thoughts head empty
we ride at dawn
a bold strategy indeed
when the crowd goes wild
my face when it works
the snail is winning
fear the mighty hamster
sudden urge to bake
let the games begin
too much glitter
the carrot has spoken
weekend mode activated
we need more chairs
the bird is the boss
my desk is a disaster
winter is for blankets
the balloon escaped
tiny victory dance
summer brain activated
the moment of truth
new year same bugs
when the password is wrong
this is my lucky day
my umbrella gave up
the owl saw everything
grandma knows best
the final boss of laundry
late again said the rabbit
ask me about my soup
the perfect crime
bread is life
the bees are busy
who moved my cheese plate
a brand new era
the tea is piping hot
mind the gap please
when the fish bites
certified couch potato
wrong answer try again
the dragon needs a hug
the volcano is grumpy
this hat changes everything
i am speed
the snack drawer is empty
shaking in my boots
doing my taxes like
that was not the plan
the ghost of deadlines past
a fine day for mischief
professional nap taker
when the elevator skips your floor
the pancake tower fell
it is a sign
the cactus is fine
party in the backyard
my bicycle has feelings
the rocket is late
welcome to the jungle gym
the alpaca disapproves
tuesday feels like monday
my puzzle is missing a piece
the crown fits perfectly
when the clock strikes five
queen of the sofa
that is not a toy
behold my masterpiece
the taco fell apart
hiding from responsibilities
rain on my picnic
slow and steady maybe
big brain time
the cookie jar is empty
catch me if you can
the penguin has a plan
who wants to know
the umbrella was a lie
all aboard the nap train
a truly cursed image
the honey pot is mine
just here for the snacks
stop and smell the roses
running out of ideas
the pumpkin is watching
this is the way home
a spoonful of chaos
when the milk is expired
heart of a lion
sleeping through the alarm
the turtle takes the lead
who ordered the extra cheese
the phone battery at two
when you step on a brick
the kettle is screaming
lost in the supermarket
my hair has a mind
the bear wants a snack
sunday scaries incoming
please clap
that new car smell
the mailbox is full again
goodbye old friend
my secret talent
the whale says hello
still waiting on that email
the spider pays rent now
one small step for me
the biscuit crumbled
powered by leftovers
the fox is too clever
we have a situation
my future is bright
the sun is too bright
pineapple belongs everywhere
when the wind steals your hat
the chicken crossed anyway
music makes it better
the mountain is calling
free hugs available
cold pizza breakfast club
my favourite bad idea
the sloth is thriving
dream big nap bigger
the traffic light hates me
the leaf refuses to fall
lemonade stand economics
when the fan stops working
a quiet night in
the tiger stole my socks
everything is sparkles now
the candle is almost out
cheese makes everything better
the stars aligned today
i volunteer as tribute
hold on to your hats
the apple does not fall
my house my rules
the vacuum is terrifying
bird watching is a lifestyle
the cupcake is a lie
that face you make
the broccoli fought back
the boss level of chores
unexpected item in the bag
the camel has opinions
just add more sprinkles
the storm is coming through
i can explain everything
the gorilla wants bananas
midnight snack attack
when the ball goes over
my playlist is superior
the hedgehog is shy today
too many open tabs
the bread did not rise
yes chef right away
the pigeon is in charge
one job and failed
the train of thought left
a slice of paradise
the unicorn is retired
the lamp is judging
stuck in the revolving door
the squirrel has a stash
my brain has left the chat
the frozen peas saved me
what is a weekend
the donut shop is closed
long story short
the shark is a vegetarian
the beach is calling
practice what you preach
the glue did not hold
my tiny kingdom
the koala needs coffee
fresh out of excuses
the parrot knows my secrets
hot chocolate season
when the lid will not open
the snowman is melting
back to square one
""".strip().splitlines()
