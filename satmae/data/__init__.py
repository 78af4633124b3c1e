"""Reading Sentinel-2 into the sample contract: readers, validity, statistics, chip store."""
