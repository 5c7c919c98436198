// The embedded English prose the synthetic tokenizer's BPE merges are learned from.
#include "model/synthetic_tokenizer.h"

namespace shardlm {

const char* synthetic_tokenizer_corpus() {
  return R"corpus(The morning was cold and clear, and the river ran quickly under the old stone bridge. A few people
walked along the bank with their dogs, and the light from the east turned the water the color of
copper. On the far side of the valley the first trains of the day were moving toward the city.

In the city the shops were opening one by one. The baker had been at work since four o'clock, and the
smell of fresh bread filled the street. She sold rolls, loaves and small sweet cakes, and she knew most
of her customers by name. When the weather was bad she gave the children who waited at the bus stop a
warm roll for free, because she remembered how long the winter mornings had felt when she was young.

The library on the corner opened at nine. It was an old building with tall windows and wooden shelves
that reached almost to the ceiling. Students came to read and to write, and older people came to look
at the newspapers and to talk quietly with one another. The librarian believed that a good library
should be a place where anyone could learn anything, and she worked hard to keep it that way.

A computer is a machine that follows instructions. The instructions are written by people, and they
are called a program. A program can add numbers, sort a list of names, draw a picture, or answer a
question. Modern computers are very fast, but they are not clever on their own: they only do what the
program tells them to do. When a program has a mistake in it, the computer will repeat the mistake
again and again, as quickly as it can, until someone finds the problem and fixes it.

Language models are programs that have learned patterns from a large amount of text. Given the start
of a sentence, such a model predicts which word is likely to come next. It does this one piece at a
time. Each piece is called a token, and a token may be a whole word, a part of a word, or a single
letter. The list of all the tokens a model knows is called its vocabulary. Common words usually have
their own token, while rare words are split into smaller parts.

The garden behind the house was small but full of life. There were tomatoes and beans in the summer,
and in the autumn the apple tree dropped more fruit than the family could eat. The grandmother made
jam from the apples and gave jars of it to the neighbors. In the spring she planted flowers along the
fence, and by the middle of the summer the whole garden was bright with color.

Travel by train is slower than travel by air, but many people prefer it. From the window of a train
you can watch the country change from hour to hour: fields and forests, small towns and large
stations, rivers and hills. You can walk around, read a book, or simply think. When the train arrives,
you are in the center of the city, not in an airport far away from everything.

Science is a way of asking questions about the world and testing the answers. A scientist makes an
observation, suggests an explanation, and then designs an experiment to see whether the explanation
holds. If the results do not match the prediction, the explanation must be changed. Over many years
this slow and careful process has taught us how the stars shine, how plants grow, and how diseases
spread from one person to another.

Music is found in every culture. People sing when they work, when they celebrate, and when they
mourn. Some music is written down and played in great halls by large orchestras; other music is passed
from parent to child and never written at all. A simple song can carry a memory for a whole lifetime,
and hearing it again can bring back a place, a season, or a face.

The weather changed in the afternoon. Clouds came in from the west, the wind grew stronger, and by
evening it was raining hard. The people on the street opened their umbrellas and walked faster. In the
houses the lights came on, and families sat down together for dinner. Outside the rain continued
through the night, and in the morning the river was higher than it had been for many years.

Good writing is clear writing. A writer should know what she wants to say before she begins, and she
should say it in the simplest words that will do the job. Short sentences are easier to read than long
ones, and concrete examples are easier to understand than general statements. After the first draft
is finished, the real work begins: reading it again, cutting what is not needed, and making every
sentence as clear as it can be.

Numbers appear everywhere in daily life: 1, 2, 3, 10, 25, 100, 2024. We count money, measure time,
and compare prices. A recipe may ask for 2 cups of flour and 3 eggs; a map may show that the next town
is 15 kilometers away. Learning to work with numbers is one of the most useful things a person can do.
)corpus";
}

}  // namespace shardlm
