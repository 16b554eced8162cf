"""What results become: the radar plot, the HTML report, Hub cards, the official leaderboard."""
