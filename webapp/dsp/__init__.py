"""Signal processing shared by the live view and the analysis page: frequency and time
weighting (IEC 61672-1), fractional-octave bands (IEC 61260-1) and the sound level meter built
from them. Filters come from scipy.signal (design, bilinear transform, second-order sections);
nothing here knows about streams, Flask or Socket.IO."""
